"""Report building blocks: a task returns a ReportSection; `phys-ml report` assembles them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .artifacts import read_json
from .config import Config


class ReportConfig(Config):
    """params.yaml's ``report`` section."""

    title: str


@dataclass
class ReportSection:
    title: str
    markdown: str
    figures: list[Path] = field(default_factory=list)  # PNGs, embedded after the text


def fmt(value: object, digits: int = 4) -> str:
    """Numbers with ``digits`` significant digits, missing values as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def ratio(ours: float | None, paper: float | None) -> float | None:
    """ours / paper, or None when either is missing or the paper's is zero."""
    if ours is None or paper in (None, 0):
        return None
    return ours / paper


def task_metrics(data_dir: Path, task: str) -> dict | None:
    """``data_dir/<task>/metrics.json``, or None before the task's evaluate stage has run (no section then)."""
    path = Path(data_dir) / task / "metrics.json"
    return read_json(path) if path.is_file() else None


def markdown_table_rows(markdown: str, header_start: str) -> list[list[str]]:
    """The body rows (cells stripped) of the first Markdown table whose header row starts with ``| header_start``:
    the inverse of `markdown_table`, for reading a report's numbers back."""
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"| {header_start}")), None)
    if start is None:
        raise ValueError(f"no table whose header starts with {header_start!r}")
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows
