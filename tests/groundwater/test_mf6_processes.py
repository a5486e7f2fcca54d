"""The mf6 processes of a run (issue 21): they die with a killed phys-ml (even SIGKILL, local and dask runners),
a broken mf6 stops the stage after a stated number of failures in a row (exit 1, naming the cause), a scheduler
address that answers but is not dask is named within the timeout, and Ctrl-C under dask prints one line."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from phys_ml.stages.common.errors import RunFailed
from phys_ml.stages.groundwater.mf6 import FailureStreak
from phys_ml.stages.groundwater.runner import ADDRESS_ENV, CLI_ENV, RUNNER_ENV
from tests.groundwater.stand_in_mf6 import stand_in_mf6

PHYS_ML = str(Path(sys.executable).with_name("phys-ml"))
ENV = {k: v for k, v in os.environ.items() if k not in (RUNNER_ENV, ADDRESS_ENV, CLI_ENV)}


def _fake_mf6(tmp_path: Path, body: str) -> Path:
    """An 'mf6' that answers --version like MODFLOW 6 and logs its pid to runs.log, then does ``body``."""
    return stand_in_mf6(tmp_path / "mf6-fake", f'echo $$ >> "{tmp_path / "runs.log"}"\n{body}')


def _params(tmp_path: Path, smoke_params: dict, **model) -> Path:
    params = json.loads(json.dumps(smoke_params))
    params["groundwater"]["model"].update(model)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _pids(tmp_path: Path) -> list[int]:
    log = tmp_path / "runs.log"
    return [int(x) for x in log.read_text().split()] if log.is_file() else []


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("runner", ["local", pytest.param("dask", marks=pytest.mark.slow)])
def test_mf6_dies_with_a_killed_phys_ml(smoke_params, tmp_path, runner):
    fake = _fake_mf6(tmp_path, "exec sleep 600")  # hangs; exec: the pid logged is the process that hangs
    params = _params(tmp_path, smoke_params, mf6=str(fake), timeout_s=600.0)
    proc = subprocess.Popen([PHYS_ML, "generate", "groundwater", "-p", str(params), "--data-dir",
                             str(tmp_path / "data"), "--runner", runner], env=ENV, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while len(_pids(tmp_path)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    started = _pids(tmp_path)
    try:
        assert len(started) >= 2 and all(map(_running, started)), proc.stderr.read() if proc.poll() else started
        proc.kill()  # SIGKILL: phys-ml cleans up nothing itself
        proc.wait()
        deadline = time.monotonic() + 60
        while any(map(_running, started)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in started if _running(pid)], "an mf6 outlived the killed phys-ml"
    finally:
        for pid in started:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("body, reason", [("exit 1", "'exit code 1'"), ("exec sleep 60", "'timed out after 1 s'")])
def test_a_broken_mf6_stops_the_stage_after_failures_in_a_row(smoke_params, tmp_path, body, reason):
    fake = _fake_mf6(tmp_path, body)
    params = _params(tmp_path, smoke_params, mf6=str(fake), timeout_s=1.0, retries=0, n_workers=2,
                     max_consecutive_failures=3)
    result = subprocess.run([PHYS_ML, "generate", "groundwater", "-p", str(params), "--data-dir",
                             str(tmp_path / "data")], capture_output=True, text=True, env=ENV, cwd=tmp_path,
                            timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    # the third failure stops the stage; the other worker's run, in flight then, can fail too before it stops
    assert len(lines) == 1 and re.match(r"error: [34] MODFLOW runs in a row failed outside the model", lines[0])
    assert reason in lines[0] and str(fake) in lines[0] and "max_consecutive_failures = 3" in lines[0]
    assert len(_pids(tmp_path)) <= 3 + 1  # the third failure stops the stage: at most one other run was in flight
    assert not list((tmp_path / "data" / "groundwater").glob("*.parquet"))


def test_the_failure_streak_counts_only_failures_outside_the_model():
    streak = FailureStreak(3, "mf6")
    for reason in ("exit code 1", "timed out after 9 s", "stopped", "failed to converge", "exit code 1",
                   "could not start mf6: [Errno 2]", "", "exit code 2", "exit code 2"):
        streak.record(reason)  # a success or a failure of the model ends the streak; "stopped" is neither
    with pytest.raises(RunFailed, match="3 MODFLOW runs in a row .* 'exit code 2' \\(mf6: mf6\\)"):
        streak.record("exit code 2")
    FailureStreak(None).record("exit code 1")  # no limit: never stops


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_a_scheduler_address_that_is_not_dask_is_named(smoke_params, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"tcp://127.0.0.1:{server.server_address[1]}"
    try:
        result = subprocess.run([PHYS_ML, "generate", "groundwater", "-p", str(_params(tmp_path, smoke_params)),
                                 "--data-dir", str(tmp_path / "data"), "--scheduler", address],
                                capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=120)
    finally:
        server.shutdown()
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert lines == [f"error: '{address}' (from --scheduler) does not answer as a dask scheduler: an HTTP "
                     "server answered (HTTP/1.0 200 OK)"], lines


@pytest.fixture
def dask_default_port_taken():
    """Port 8787 (dask's default HTTP port) held as another cluster on the machine would hold it."""
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 8787))
        blocker.listen()
    except OSError:  # taken already: the same situation
        pass
    yield
    blocker.close()


@pytest.mark.slow
def test_ctrl_c_under_dask_prints_one_line(smoke_params, tmp_path, mf6_exe, dask_default_port_taken):
    """Also with dask's default port taken (another cluster, or a parallel test): no warning on stderr."""
    params = json.loads(json.dumps(smoke_params))
    params["groundwater"]["generate"].update(n_sims=96, chunk_size=8)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    data = tmp_path / "data"
    proc = subprocess.Popen([PHYS_ML, "generate", "groundwater", "-p", str(path), "--data-dir", str(data),
                             "--runner", "dask"], env=ENV, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
    chunks = data / "groundwater" / "chunks"
    deadline = time.monotonic() + 240
    while not list(chunks.glob("chunk-*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole foreground process group
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted; rerun resumes from"), stderr
