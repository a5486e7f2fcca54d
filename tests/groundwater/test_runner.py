"""The runners: dask (LocalCluster) gives the local runner's bytes, survives a lost worker, retries failed runs;
a bad scheduler address is a one-line error with exit 2; the runner choice and its precedence."""

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.groundwater import freyberg, pipeline
from phys_ml.stages.groundwater.config import ModelConfig
from phys_ml.stages.groundwater.runner import ADDRESS_ENV, RUNNER_ENV, open_runner, runner_settings
from phys_ml.stages.groundwater.simulate import ModelPool
from tests.groundwater.stand_in_mf6 import stand_in_mf6

PHYS_ML = str(Path(sys.executable).with_name("phys-ml"))
SCENARIO = freyberg.Scenario(n_periods=3)


@pytest.fixture(autouse=True)
def _no_runner_env(monkeypatch):
    monkeypatch.delenv(RUNNER_ENV, raising=False)
    monkeypatch.delenv(ADDRESS_ENV, raising=False)


def _fields(n: int) -> np.ndarray:
    return np.log(5.0) + 0.3 * np.random.default_rng(7).standard_normal((n, freyberg.N_ACTIVE))


def _model_cfg(smoke_params, **over) -> ModelConfig:
    return ModelConfig(**{**smoke_params["groundwater"]["model"], **over})


def test_runner_settings_precedence(smoke_params):
    cfg = _model_cfg(smoke_params)
    assert runner_settings(cfg, {}).runner == "local"
    assert runner_settings(_model_cfg(smoke_params, runner="dask"), {}).scheduler_address is None
    dask_param = _model_cfg(smoke_params, runner="dask", scheduler_address="tcp://a:1")
    assert runner_settings(dask_param, {}).scheduler_address == "tcp://a:1"
    # the environment beats params; DASK_SCHEDULER_ADDRESS alone selects dask; an explicit runner wins
    from_env = runner_settings(cfg, {ADDRESS_ENV: "tcp://b:2"})
    assert (from_env.runner, from_env.scheduler_address) == ("dask", "tcp://b:2")
    assert runner_settings(dask_param, {ADDRESS_ENV: "tcp://b:2"}).scheduler_address == "tcp://b:2"
    assert runner_settings(cfg, {ADDRESS_ENV: "tcp://b:2", RUNNER_ENV: "local"}).runner == "local"
    assert runner_settings(dask_param, {RUNNER_ENV: "local"}).runner == "local"
    with pytest.raises(UserError, match=RUNNER_ENV):
        runner_settings(cfg, {RUNNER_ENV: "slurm"})
    with pytest.raises(Exception, match="runner"):
        _model_cfg(smoke_params, runner="panther")


@pytest.mark.slow
def test_dask_generation_gives_the_local_bytes(smoke_params, tmp_path, mf6_exe, monkeypatch):
    out = {}
    for runner in ("local", "dask"):
        monkeypatch.setenv(RUNNER_ENV, runner)
        ctx = StageContext(task="groundwater", params=copy.deepcopy(smoke_params), data_dir=tmp_path / runner)
        pipeline.generate(ctx)
        out[runner] = {f: (ctx.task_dir / f).read_bytes() for f in ("simulations.parquet", "references.parquet")}
        summary = json.loads((ctx.task_dir / "generate.json").read_text())
        timing = json.loads((ctx.data_dir / "timings" / "groundwater-generate.json").read_text())
        assert timing["runner"] == runner and summary["n_ok"] + summary["n_failed"] == 30
    assert out["dask"] == out["local"]


def test_lost_worker_loses_and_duplicates_nothing(smoke_params, mf6_exe):
    lnk = _fields(24)
    with ModelPool(mf6_exe, 2, scenario=SCENARIO) as pool:
        ref_heads, ref_ok, _ = pool.run(lnk)
    assert ref_ok.all()
    cfg = _model_cfg(smoke_params, n_workers=2)
    with open_runner(cfg, mf6_exe, SCENARIO, environ={RUNNER_ENV: "dask"}) as runner:
        client = runner.client
        result = {}
        thread = threading.Thread(target=lambda: result.update(out=runner.run(lnk)))
        thread.start()

        def n_done(dask_scheduler):
            return sum(ts.state == "memory" for ts in dask_scheduler.tasks.values())

        deadline = time.monotonic() + 30
        while client.run_on_scheduler(n_done) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        busy = [w for w, keys in client.processing().items() if keys]
        assert busy, "no task in flight to lose"
        pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
        os.kill(pid, signal.SIGKILL)  # the worker dies mid-run; its nanny starts a new one
        thread.join(60)
        assert not thread.is_alive()
        assert busy[0] not in client.scheduler_info()["workers"]
    heads, ok, reasons = result["out"]
    assert ok.all() and reasons == [""] * len(lnk)
    np.testing.assert_array_equal(heads, ref_heads)


def _fail_once_mf6(tmp_path: Path, real: Path) -> Path:
    """An mf6 that fails the first run in each model folder, then behaves like the real one."""
    return stand_in_mf6(tmp_path / "mf6-fails-once",
                        f'if [ ! -e failed-once ]; then touch failed-once; exit 3; fi\nexec "{real}" "$@"', real)


def test_a_run_that_fails_once_is_retried_and_counted_ok(smoke_params, tmp_path, mf6_exe):
    fake = _fail_once_mf6(tmp_path, mf6_exe)
    lnk = _fields(3)
    with ModelPool(fake, 2, scenario=SCENARIO, retries=0) as pool:
        _, ok, reasons = pool.run(lnk)
    assert ok.sum() == 1 and sorted(reasons)[1:] == ["exit code 3"] * 2  # the first run in each folder failed
    with ModelPool(fake, 2, scenario=SCENARIO, retries=1) as pool:
        heads, ok, _ = pool.run(lnk)
    assert ok.all() and np.isfinite(heads).all()
    cfg = _model_cfg(smoke_params, n_workers=1, retries=1, mf6=str(fake))
    with open_runner(cfg, fake, SCENARIO, environ={RUNNER_ENV: "dask"}) as runner:
        dheads, dok, _ = runner.run(lnk)
    assert dok.all()
    np.testing.assert_array_equal(dheads, heads)


def test_a_worker_without_mf6_is_named(smoke_params, tmp_path, mf6_exe):
    from phys_ml.stages.groundwater.dask_runner import DaskRunner

    with pytest.raises(UserError, match=r"dask worker tcp://127\.0\.0\.1:\d+: mf6 not found"):
        DaskRunner(tmp_path / "no-mf6", 1, scenario=SCENARIO)


def test_bad_scheduler_address_is_one_line_exit_2(smoke_params, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(json.loads(json.dumps(smoke_params))))
    env = {k: v for k, v in os.environ.items() if k not in (RUNNER_ENV, ADDRESS_ENV)}
    t0 = time.monotonic()
    result = subprocess.run([PHYS_ML, "generate", "groundwater", "--params", str(params), "--data-dir",
                             str(tmp_path / "data"), "--scheduler", "tcp://127.0.0.1:9"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to the dask scheduler at 'tcp://127.0.0.1:9'" in lines[0]
    assert "Traceback" not in result.stderr and time.monotonic() - t0 < 60
    result = subprocess.run([PHYS_ML, "generate", "particles", "--runner", "dask"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "groundwater task only" in result.stderr
