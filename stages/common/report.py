"""Report building blocks: a task returns a ReportSection; `phys-ml report` assembles them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


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
