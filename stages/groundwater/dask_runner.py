"""The dask.distributed runner: MODFLOW runs fanned out over dask workers, one task per run.

With no scheduler address it starts a `LocalCluster` of ``n_workers`` worker processes with one thread each on
this machine; with an address it connects a `Client` to the user's scheduler (``dask scheduler``, then
``dask worker ADDRESS`` on each node with mf6 installed, or dask-jobqueue on SLURM/PBS).

Each worker keeps its own model workspace: a `WorkerPlugin` finds mf6 there (`mf6.find_mf6`: the explicit path,
$PHYS_ML_MF6, PATH, the install folder, flopy's bin) and writes the Freyberg model once into a temporary folder,
one copy per worker thread (a `simulate.ModelPool` on the worker). A task then rewrites only the K file and runs
mf6 through the same per-run body as the local runner (`simulate.run_in_folder`). Tasks are pure (same ln K,
same heads, nothing kept between runs but the folder), so a task whose worker is lost is simply re-run
elsewhere by the scheduler; ``retries`` is both the per-run retry count and dask's task retry count. Results are
keyed by run index and gathered in input order, so the output is the same as the local runner's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distributed import Client, LocalCluster, WorkerPlugin, as_completed, get_worker

from phys_ml.stages.common.errors import UserError

from . import freyberg
from .mf6 import FailureStreak, find_mf6
from .simulate import ModelPool, model_folder

CONNECT_TIMEOUT_S = 5.0      # a bad scheduler address fails within this
WAIT_FOR_WORKERS_S = 60.0    # a scheduler without workers fails after this


@dataclass(frozen=True)
class WorkspaceSpec:
    """What a worker needs to build its model folders; sent once, with the plugin."""

    mf6: str | None           # explicit mf6 path (None: the worker's own search order)
    scenario: freyberg.Scenario
    timeout: float
    retries: int


class ModelWorkspacePlugin(WorkerPlugin):
    """A worker plugin holding that worker's model folders (a `ModelPool`, one folder per worker thread)."""

    def __init__(self, name: str, spec: WorkspaceSpec):
        self.name, self.spec = name, spec
        self.pool: ModelPool | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # sent to the scheduler and the workers without its folders or lock
        return {"name": self.name, "spec": self.spec}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["name"], state["spec"])

    def ensure(self, worker) -> ModelPool:
        """The worker's pool, written on first use; UserError naming the worker when mf6 is missing there."""
        with self._lock:
            if self.pool is None:
                try:
                    exe = find_mf6(self.spec.mf6)
                except UserError as exc:
                    raise UserError(f"dask worker {worker.address}: {exc}") from None
                root = model_folder(worker.local_directory)
                self.pool = ModelPool(exe, max(1, int(worker.state.nthreads)), root=root,
                                      scenario=self.spec.scenario, timeout=self.spec.timeout,
                                      retries=self.spec.retries)
            return self.pool

    async def setup(self, worker) -> None:
        await asyncio.to_thread(self.ensure, worker)

    def teardown(self, worker) -> None:
        if self.pool is not None:
            shutil.rmtree(self.pool.root, ignore_errors=True)
            self.pool = None


def simulate_task(plugin_name: str, index: int, lnk: np.ndarray) -> tuple[int, np.ndarray, bool, str]:
    """One MODFLOW run on a dask worker: (index, heads (n_periods, 13), ok, reason)."""
    worker = get_worker()
    plugin = worker.plugins.get(plugin_name)
    if plugin is None:  # not registered on this worker (yet): raise so that dask retries elsewhere
        raise RuntimeError(f"dask worker {worker.address} has no {plugin_name} plugin")
    outcome = plugin.ensure(worker).run_one(index, lnk)
    return outcome.index, outcome.heads, outcome.ok, outcome.reason


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


DASK_HANDSHAKE = b"compression"  # a dask scheduler greets every new connection with a msgpack map holding this key


def probe_scheduler(address: str, source: str, timeout: float) -> None:
    """Check, within ``timeout`` seconds, that a TCP address answers as a dask scheduler; else a UserError that
    says what answered (nothing, an HTTP server, other bytes). dask's own connect can wait without limit on a
    server that accepts the connection and then says nothing."""
    import socket
    from urllib.parse import urlsplit

    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp"):  # tls://, ucx://: dask's own connect, with its timeout
        return
    where = f"the dask scheduler at {address!r} (from {source})"
    try:
        parts = urlsplit(f"//{rest}")
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise UserError(f"{where}: expected an address like tcp://host:8786")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            try:
                greeting = sock.recv(256)
            except (TimeoutError, socket.timeout):
                greeting = None
            if greeting and DASK_HANDSHAKE in greeting:
                return
            if greeting is None:  # silent: ask as a web client would, to say what it is
                try:
                    sock.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
                    reply = sock.recv(256)
                except OSError:
                    reply = b""
                first = reply.split(b"\r\n", 1)[0].decode("ascii", "replace")
                what = (f"an HTTP server answered ({first})" if first.startswith("HTTP/")
                        else f"it accepted the connection but sent nothing within {timeout:.0f} s")
            else:
                what = f"it answered {greeting[:40]!r}" if greeting else "it closed the connection at once"
    except OSError as exc:
        raise UserError(f"cannot connect to {where} within {timeout:.0f} s: {_one_line(exc)}") from None
    raise UserError(f"{address!r} (from {source}) does not answer as a dask scheduler: {what}")


@contextlib.contextmanager
def _workers_ignore_sigint():
    """While a LocalCluster starts its worker processes: they inherit an ignored SIGINT, so a terminal's Ctrl-C
    reaches only phys-ml, which stops the cluster itself (instead of every worker printing its traceback)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class DaskRunner:
    """Runs on a dask.distributed cluster; a context manager like `simulate.ModelPool`."""

    def __init__(self, mf6: str | Path | None, n_workers: int, scenario: freyberg.Scenario = freyberg.Scenario(),
                 timeout: float = 120.0, retries: int = 0, address: str | None = None,
                 source: str = "groundwater.model.runner", connect_timeout: float = CONNECT_TIMEOUT_S,
                 wait_for_workers: float = WAIT_FOR_WORKERS_S, max_consecutive_failures: int | None = None):
        if n_workers < 1:
            raise ValueError(f"n_workers must be >= 1, got {n_workers}")
        self.name = "dask"
        self.scenario, self.retries, self.address = scenario, retries, address
        self.streak = FailureStreak(max_consecutive_failures, mf6)
        self.cluster = None
        self.client = None
        self._calls = itertools.count()
        self._token = uuid.uuid4().hex[:12]
        try:
            if address is None:
                with _workers_ignore_sigint():
                    # no dashboard; the scheduler's own HTTP server on a free port (its default, 8787, is taken
                    # by any other cluster on the machine, and dask then warns on stderr)
                    self.cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                                host="127.0.0.1", dashboard_address=None,
                                                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                                silence_logs=logging.ERROR)
                self.client = Client(self.cluster, timeout=max(connect_timeout, 30.0))
            else:
                probe_scheduler(address, source, connect_timeout)
                try:
                    self.client = Client(address, timeout=connect_timeout)
                except Exception as exc:  # noqa: BLE001 - any failure to connect is a bad address to the user
                    raise UserError(f"cannot connect to the dask scheduler at {address!r} (from {source}) within "
                                    f"{connect_timeout:.0f} s: {_one_line(exc)}") from None
                try:
                    self.client.wait_for_workers(1, timeout=wait_for_workers)
                except Exception:  # noqa: BLE001
                    raise UserError(f"no dask worker joined the scheduler at {address} within "
                                    f"{wait_for_workers:.0f} s: start `dask worker {address}` on each node") from None
            self.plugin_name = f"phys-ml-gw-{self._token}"
            spec = WorkspaceSpec(None if mf6 is None else str(mf6), scenario, float(timeout), int(retries))
            self.client.register_plugin(ModelWorkspacePlugin(self.plugin_name, spec), name=self.plugin_name)
        except BaseException:
            self.close()
            raise
        self.n_workers = max(1, sum(self.client.nthreads().values()))

    def __enter__(self) -> DaskRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the client and, when this runner started it, the local cluster (idempotent)."""
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        if client is not None:
            try:
                if cluster is None:  # the user's cluster: leave it clean for the next client
                    client.unregister_worker_plugin(self.plugin_name)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
        if cluster is not None:
            try:
                cluster.close()
            except Exception:  # noqa: BLE001
                pass

    def run(self, lnk: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Heads (n, n_periods, 13), ok (n,), reasons (n,) for the rows of ``lnk`` (n, 706), in row order."""
        if self.client is None:
            raise RuntimeError("DaskRunner is closed")
        lnk = np.atleast_2d(np.asarray(lnk, dtype=np.float64))
        n = len(lnk)
        heads = np.full((n, self.scenario.n_periods, len(freyberg.OBS_CELLS)), np.nan)
        ok = np.zeros(n, dtype=bool)
        reasons = [""] * n
        if n == 0:
            return heads, ok, reasons
        call = next(self._calls)
        futures = [self.client.submit(simulate_task, self.plugin_name, i, row, key=f"{self.plugin_name}-{call}-{i}",
                                      pure=False, retries=self.retries) for i, row in enumerate(lnk)]
        try:
            for future in as_completed(futures):
                index, h, good, reason = future.result()
                heads[index], ok[index], reasons[index] = h, good, reason
                self.streak.record(reason)  # a broken mf6 on the workers stops the stage (RunFailed)
        except BaseException:  # Ctrl-C, a task error, a broken mf6: nothing left running on the cluster
            try:
                self.client.cancel(futures)
            except Exception:  # noqa: BLE001
                pass
            raise
        finally:
            del futures
        return heads, ok, reasons
