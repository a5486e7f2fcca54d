"""Progress display: a rich bar on a terminal, a few plain lines otherwise (CI, dvc repro)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from rich.console import Console
from rich.table import Table

T = TypeVar("T")


def _interactive() -> bool:
    return sys.stderr.isatty()


def track(iterable: Iterable[T], description: str, total: int | None = None, lines: int = 5) -> Iterator[T]:
    """Iterate with progress: a live bar on a terminal, else about ``lines`` plain lines on stderr."""
    if total is None and isinstance(iterable, Sequence):
        total = len(iterable)
    if _interactive():
        from rich.progress import track as rich_track

        yield from rich_track(iterable, description=description, total=total, console=Console(stderr=True))
        return
    every = max(1, (total or 0) // max(lines, 1)) if total else None
    for i, item in enumerate(iterable, start=1):
        yield item
        if every and (i % every == 0 or i == total):
            print(f"{description}: {i}/{total}", file=sys.stderr, flush=True)


def print_summary(console: Console, title: str, rows: dict[str, object] | list[tuple[str, object]]) -> None:
    """The end-of-stage summary: a two-column table of names and values."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for name, value in (rows.items() if isinstance(rows, dict) else rows):
        table.add_row(str(name), _fmt(value))
    console.print(table)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
