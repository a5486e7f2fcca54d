"""Run many ln K fields through MODFLOW 6 in parallel, each worker in its own model folder.

The model is written once (flopy) and copied to one folder per worker; a run rewrites only `k.txt`, launches
mf6 in that folder and reads the 13 x 25 heads. Workers are threads that each own a folder and wait on an mf6
subprocess: the simulations run as parallel processes while the Python side per run (write 800 numbers, read one
small CSV) is about a millisecond, so threads avoid pickling and process start-up without losing parallelism.
A failed or non-converged run is retried ``retries`` times, then gives NaN heads, ok=False and the last
attempt's reason; callers count and report them. `run_in_folder` is the one per-run body (rewrite K, run mf6,
read heads): this pool and the dask workers (`dask_runner`) both call it through `ModelPool.run_one`.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import freyberg
from .mf6 import FailureStreak, ProcessSet, run_model

TMP_PREFIX = "phys-ml-gw-"  # model folders: phys-ml-gw-<pid>-<random>, removed by their owner or, after a
                            # kill -9, by the next pool that finds the owner dead (`remove_stale_folders`)


@dataclass(frozen=True)
class RunOutcome:
    index: int
    heads: np.ndarray  # (n_periods, 13), NaN when the run failed
    ok: bool
    reason: str


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_folders(parent: Path | str | None = None) -> list[Path]:
    """Remove the model folders under ``parent`` (default: the temp directory) whose owning process is dead."""
    removed = []
    for folder in Path(parent or tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        pid = folder.name[len(TMP_PREFIX):].split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def model_folder(parent: Path | str | None = None) -> Path:
    """A fresh folder for model copies, named after this process; stale ones of dead processes go first."""
    remove_stale_folders(parent)
    return Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=parent))


def _attempt(exe: Path, ws: Path, lnk: np.ndarray, n_periods: int, timeout: float,
             procs: ProcessSet | None = None) -> tuple[np.ndarray, bool, str]:
    (ws / freyberg.OBS_FILE).unlink(missing_ok=True)
    freyberg.write_k(ws, lnk)
    ok, reason = run_model(exe, ws, timeout, procs)
    nan = np.full((n_periods, len(freyberg.OBS_CELLS)), np.nan)
    if not ok:
        return nan, False, reason
    try:
        heads = freyberg.read_heads(ws, n_periods)
    except (OSError, ValueError) as exc:
        return nan, False, f"unreadable heads: {exc}"
    if not np.all(np.isfinite(heads)):
        return nan, False, "non-finite heads"
    return heads, True, ""


def run_in_folder(exe: Path, ws: Path, lnk: np.ndarray, n_periods: int, timeout: float,
                  retries: int = 0, procs: ProcessSet | None = None) -> tuple[np.ndarray, bool, str]:
    """One run in model folder ``ws``: rewrite only the K file, run mf6, read the (n_periods, 13) heads.

    A failure of any kind is retried up to ``retries`` times (a retry costs one run: a deterministic
    non-convergence fails again and is then counted as failed with its reason, as without retries). Once
    ``procs`` is stopped, nothing more is started.
    """
    for _ in range(retries + 1):
        heads, ok, reason = _attempt(exe, ws, lnk, n_periods, timeout, procs)
        if ok or (procs is not None and procs.stopped):
            break
    return heads, ok, reason


class ModelPool:
    """A set of worker folders holding the Freyberg model; use as a context manager."""

    def __init__(self, exe: Path, n_workers: int, root: Path | None = None,
                 scenario: freyberg.Scenario = freyberg.Scenario(), timeout: float = 120.0, retries: int = 0,
                 max_consecutive_failures: int | None = None):
        if n_workers < 1:
            raise ValueError(f"n_workers must be >= 1, got {n_workers}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.exe, self.n_workers, self.scenario, self.timeout = Path(exe), n_workers, scenario, timeout
        self.retries = retries
        self.name = "local"
        self._own_root = root is None
        self.procs = ProcessSet()
        self.streak = FailureStreak(max_consecutive_failures, self.exe)
        self.root = model_folder() if root is None else Path(root)
        template = self.root / "w00"
        freyberg.write_model(template, np.full(freyberg.N_ACTIVE, np.log(5.0)), scenario)
        self._free: queue.Queue[Path] = queue.Queue()
        self._free.put(template)
        for w in range(1, n_workers):
            folder = self.root / f"w{w:02d}"
            if folder.exists():
                shutil.rmtree(folder)
            shutil.copytree(template, folder)
            self._free.put(folder)

    def __enter__(self) -> ModelPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stop(self) -> None:
        """Kill the running mf6 processes and start no more (an interrupt); the pool is then done."""
        self.procs.stop()

    def close(self) -> None:
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def run_one(self, index: int, lnk: np.ndarray) -> RunOutcome:
        """Run one ln K field (706,) in a free folder of this pool (safe from several threads at once)."""
        ws = self._free.get()
        try:
            heads, ok, reason = run_in_folder(self.exe, ws, lnk, self.scenario.n_periods, self.timeout,
                                              self.retries, self.procs)
        finally:
            self._free.put(ws)
        try:
            self.streak.record(reason)
        except Exception:  # a broken mf6: stop the other runs at once, the stage stops with this error
            self.stop()
            raise
        return RunOutcome(index, heads, ok, reason)

    def run_iter(self, lnk: np.ndarray) -> Iterator[RunOutcome]:
        """Yield one outcome per row of ``lnk`` (n, 706), in row order.

        An exception while waiting (Ctrl-C) stops the pool: queued runs are dropped and running mf6 processes
        killed, so the workers end at once instead of finishing their runs.
        """
        lnk = np.atleast_2d(np.asarray(lnk, dtype=np.float64))
        pool = ThreadPoolExecutor(self.n_workers)
        try:
            futures = [pool.submit(self.run_one, i, row) for i, row in enumerate(lnk)]
            for fut in futures:
                yield fut.result()
        except BaseException:
            self.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def run(self, lnk: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Heads (n, n_periods, 13), ok (n,), reasons (n,) for the rows of ``lnk`` (n, 706)."""
        outcomes = list(self.run_iter(lnk))
        heads = np.stack([o.heads for o in outcomes]) if outcomes else np.empty((0, self.scenario.n_periods, 13))
        return heads, np.array([o.ok for o in outcomes], dtype=bool), [o.reason for o in outcomes]
