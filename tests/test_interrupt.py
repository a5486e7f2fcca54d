"""End to end: Ctrl-C during `phys-ml generate groundwater` stops promptly with exit 130 and one line, keeps the
finished chunks, leaves no half-written output, and a rerun resumes from the kept chunks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PHYS_ML = str(Path(sys.executable).with_name("phys-ml"))


@pytest.fixture()
def mf6_or_skip():
    from phys_ml.stages.common.errors import UserError
    from phys_ml.stages.groundwater.mf6 import find_mf6

    try:
        return find_mf6()
    except UserError as exc:
        pytest.skip(f"MODFLOW 6 not available ({exc})")


def _smoke_params(tmp_path: Path) -> Path:
    from phys_ml.stages.common.params import deep_merge, load_params, load_yaml

    params = deep_merge(load_params(ROOT / "params.yaml"), load_yaml(ROOT / "profiles" / "smoke.yaml"))
    params = json.loads(json.dumps(params))  # plain dicts for safe_dump
    params["groundwater"]["generate"].update(n_sims=96, chunk_size=8)  # long enough to interrupt
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _sigint_default() -> None:
    """Ctrl-C as in a terminal, even when the tests run as a background job (whose shell ignores SIGINT, and
    a process started with SIGINT ignored keeps ignoring it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_sigint_stops_generation_and_the_rerun_resumes(tmp_path, mf6_or_skip):
    params, data = _smoke_params(tmp_path), tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("PHYS_ML_GW_RUNNER", "DASK_SCHEDULER_ADDRESS")}
    cmd = [PHYS_ML, "generate", "groundwater", "-p", str(params), "--data-dir", str(data)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                            preexec_fn=_sigint_default)
    chunks = data / "groundwater" / "chunks"
    deadline = time.monotonic() + 240
    while not list(chunks.glob("chunk-*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"generation ended before a chunk appeared: {proc.communicate()}"
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    _, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 5, "the run went on after the signal"
    assert proc.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted; rerun resumes from") and "chunks kept)" in last, stderr
    kept = sorted(p.name for p in chunks.glob("chunk-*.parquet"))
    assert kept and f"({len(kept)} of 12 chunks kept)" in last
    assert not list(data.rglob("*.tmp")), "a half-written file was left"
    for out in ("simulations.parquet", "references.parquet", "generate.json"):
        assert not (data / "groundwater" / out).exists()
    assert not [p for p in Path("/tmp").glob(f"phys-ml-gw-{proc.pid}-*")], "model folders left behind"

    rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    timing = json.loads((data / "timings" / "groundwater-generate.json").read_text())
    assert timing["n_chunks_resumed"] >= len(kept) and timing["n_run_this_time"] <= 96 - 8 * len(kept)
    summary = json.loads((data / "groundwater" / "generate.json").read_text())
    assert summary["n_ok"] + summary["n_failed"] == 96 and not chunks.exists()
