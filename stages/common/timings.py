"""Wall times, kept out of the pipeline: they change between identical runs, so no DVC output or dependency may
hold one (a rerun with the same params must leave dvc.lock unchanged). Stages record them under
``<data_dir>/timings/``, a folder no stage declares; the report states costs as counts (model runs, epochs,
passes), and ``benchmarks/`` print speeds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .artifacts import write_json

TIMINGS_DIR = "timings"


def timing_path(data_dir: str | Path, task: str, stage: str) -> Path:
    return Path(data_dir) / TIMINGS_DIR / f"{task}-{stage}.json"


def record_timing(data_dir: str | Path, task: str, stage: str, values: dict[str, Any]) -> Path:
    """Write ``values`` (wall seconds and the like) to ``<data_dir>/timings/<task>-<stage>.json``."""
    return write_json(timing_path(data_dir, task, stage), values)


class Stopwatch:
    """Named wall-clock intervals: ``with watch("train"): ...`` then ``watch.seconds`` -> {"train": 1.23}."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)
