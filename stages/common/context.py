"""What every stage function receives from the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console


@dataclass
class StageContext:
    task: str
    params: dict[str, Any]
    data_dir: Path = Path("data")
    console: Console = field(default_factory=lambda: Console(stderr=True))

    @property
    def task_dir(self) -> Path:
        return self.data_dir / self.task
