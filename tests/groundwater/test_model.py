"""The Freyberg model: geometry, and physics of real MODFLOW 6 runs."""

import numpy as np
import pytest

from phys_ml.stages.groundwater import freyberg
from phys_ml.stages.groundwater.mf6 import run_model


def test_grid_has_706_active_cells_and_the_13_observation_cells_inside():
    dom = freyberg.idomain()
    assert dom.shape == (40, 20) and dom.sum() == 706 == freyberg.N_ACTIVE
    assert len(freyberg.OBS_CELLS) == 13 and len(set(freyberg.OBS_CELLS)) == 13
    for r, c in freyberg.OBS_CELLS + freyberg.WELLS:
        assert dom[r - 1, c - 1] == 1
    assert dom[:, freyberg.STREAM_COL - 1].all()  # the stream column is active in every row
    assert all(dom[freyberg.GHB_ROW - 1, c - 1] for c in freyberg.GHB_COLS)
    top, bot = freyberg.elevations()
    assert (top - bot)[dom == 1].min() > 20.0
    pos = freyberg.obs_active_positions()
    assert len(np.unique(pos)) == 13 and pos.max() < 706


def test_written_observation_package_points_at_the_13_cells(tmp_path):
    freyberg.write_model(tmp_path, np.zeros(706))
    rows = [line.split() for line in (tmp_path / "freyberg.obs").read_text().splitlines()
            if line.strip().lower().startswith("h") and "head" in line.lower()]
    cells = [(int(r[3]), int(r[4])) for r in rows]
    assert cells == freyberg.OBS_CELLS and all(r[2] == "1" for r in rows)
    k = np.loadtxt(tmp_path / freyberg.K_FILE)
    assert k.shape == (40, 20) and np.allclose(k[freyberg.idomain() == 1], 1.0)


def _run(ws, exe, lnk, scenario=freyberg.Scenario()):
    freyberg.write_model(ws, lnk, scenario)
    ok, reason = run_model(exe, ws)
    assert ok, reason
    return freyberg.read_heads(ws, scenario.n_periods)


def test_steady_state_uniform_k_conserves_mass(tmp_path, mf6_exe):
    heads = _run(tmp_path, mf6_exe, np.full(706, np.log(5.0)), freyberg.Scenario(n_periods=1))
    assert heads.shape == (1, 13)
    disc = freyberg.read_budget_discrepancy(tmp_path)
    assert disc and max(abs(d) for d in disc) < 0.01  # percent, MODFLOW's volumetric budget
    # Heads lie between the drain level (GHB stage 33.5 m) and the land surface.
    top, _ = freyberg.elevations()
    assert heads.min() > freyberg.GHB_STAGE - 0.5
    assert heads.max() < top.max()


@pytest.mark.slow
def test_heads_fall_with_more_pumping_or_less_recharge(tmp_path, mf6_exe):
    lnk = np.full(706, np.log(5.0))
    base = _run(tmp_path / "base", mf6_exe, lnk)
    pump = _run(tmp_path / "pump", mf6_exe, lnk, freyberg.Scenario(pumping_scale=2.0))
    dry = _run(tmp_path / "dry", mf6_exe, lnk, freyberg.Scenario(recharge_scale=0.5))
    assert max(abs(d) for d in freyberg.read_budget_discrepancy(tmp_path / "base")) < 0.01
    for changed in (pump, dry):
        assert np.all(changed <= base + 1e-6)
        assert (base - changed).mean() > 0.01


def test_higher_conductivity_flattens_the_water_table(tmp_path, mf6_exe):
    low = _run(tmp_path / "low", mf6_exe, np.full(706, np.log(2.0)), freyberg.Scenario(n_periods=1))
    high = _run(tmp_path / "high", mf6_exe, np.full(706, np.log(20.0)), freyberg.Scenario(n_periods=1))
    assert np.ptp(high) < np.ptp(low)


def test_river_simplification_runs_and_a_broken_executable_counts_as_failed(tmp_path, mf6_exe):
    from phys_ml.stages.groundwater.simulate import ModelPool

    heads = _run(tmp_path / "riv", mf6_exe, np.full(706, np.log(5.0)), freyberg.Scenario(n_periods=1, stream="riv"))
    assert np.isfinite(heads).all()
    fake = tmp_path / "fake-mf6"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    with ModelPool(fake, 2, scenario=freyberg.Scenario(n_periods=1)) as pool:
        h, ok, reasons = pool.run(np.zeros((3, 706)))
    assert not ok.any() and np.isnan(h).all() and reasons == ["exit code 3"] * 3
