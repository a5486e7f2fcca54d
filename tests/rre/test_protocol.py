"""The selection protocol: its settings and rule read only the sensors, and the train stage (which applies it)
runs with the solver's truth absent."""

import copy

import numpy as np
import pytest

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.context import StageContext
from phys_ml.stages.common.errors import UserError
from phys_ml.stages.rre import pipeline, protocol, store


def sensor_grid(locations=6, depths=(0.25, 1.25, 2.25, 3.25, 4.25), times=(100.0, 200.0, 300.0, 400.0)):
    cols = [(1.0 + i, 2.0 + i) for i in range(locations)]
    rows = [(x, y, z, t) for t in times for (x, y) in cols for z in depths]
    return np.asarray(rows)


def test_sparse_mask_keeps_the_requested_locations_and_layers():
    s = sensor_grid()
    m = protocol.sparse_mask(s, 3, 3, seed=0)
    assert np.unique(s[m, :2], axis=0).shape[0] == 3
    np.testing.assert_array_equal(np.unique(s[m, 2]), [0.25, 2.25, 4.25])  # ends kept, evenly spaced
    assert m.sum() == 3 * 3 * 4
    with pytest.raises(UserError, match="only 6 sensor locations"):
        protocol.sparse_mask(s, 7, 3, seed=0)


def test_holdouts():
    s = sensor_grid()
    all_ = np.ones(len(s), dtype=bool)
    held = protocol.holdout_layer(s, all_)
    np.testing.assert_array_equal(np.unique(s[held, 2]), [2.25])  # the middle layer
    t_split = protocol.forecast_split(s[:, 3], 0.5)
    assert t_split == 200.0
    early = s[:, 3] <= t_split
    late = protocol.holdout_latest(s[:, 3], early, 0.2)
    np.testing.assert_array_equal(np.unique(s[late, 3]), [200.0])
    assert not (late & ~early).any()
    two = np.isin(s[:, 2], [0.25, 4.25])
    np.testing.assert_array_equal(np.unique(s[protocol.holdout_layer(s, two), 2]), [4.25])  # the deeper of two
    with pytest.raises(UserError, match="at least 2 layers"):
        protocol.holdout_layer(s, s[:, 2] == 0.25)


def test_choose_takes_the_lowest_misfit_and_ties_to_the_larger_weight():
    assert protocol.choose({0.0: 0.2, 0.1: 0.1, 1.0: 0.3}) == 0.1
    assert protocol.choose({0.0: 0.1, 0.1: 0.1, 1.0: float("inf")}) == 0.1
    with pytest.raises(UserError, match="diverged"):
        protocol.choose({0.0: float("nan")})


def tiny(params):
    p = copy.deepcopy(params)
    p["rre"]["generate"]["cases"] = ["evaporation"]
    p["rre"]["generate"]["grid"] = {"nx": 4, "ny": 4, "nz": 10, "lx": 25.0, "ly": 25.0, "lz": 5.0}
    p["rre"]["generate"]["sensors"]["locations"] = 4
    p["rre"]["generate"]["n_times"] = 6
    p["rre"]["generate"]["collocation"] = 200
    p["rre"]["generate"]["boundary_points"] = 50
    t = p["rre"]["train"]
    t["cases"] = ["evaporation"]
    t["runs"] = [{"optimizer": {"name": "adam", "lr": 0.01}, "batch": "full", "iterations": 3}]
    t["selection"].update(weights=[0.0, 0.1], iterations=3, collocation=100)
    t["studies"].update(iterations=4, sparse=[{"locations": 2, "layers": 3}])
    t["studies"]["soil"]["iterations"] = 3
    return p


def test_selection_runs_without_the_truth(smoke_params, tmp_path, monkeypatch):
    """The train stage applies the protocol; with the solution table deleted (and any attempt to read one
    failing) it still chooses w for every setting."""
    ctx = StageContext(task="rre", params=tiny(smoke_params), data_dir=tmp_path)
    pipeline.generate(ctx, None)
    gen = ctx.task_dir / "generated"
    (gen / "evaporation_solution.parquet").unlink()
    sensors, _ = artifacts.read_parquet(gen / "evaporation_sensors.parquet")
    assert "psi_true" not in sensors.column_names  # the sensors table holds only what a user would have
    real = artifacts.read_parquet

    def guarded(path, *a, **k):
        assert "solution" not in str(path), f"the train stage read the truth: {path}"
        return real(path, *a, **k)

    monkeypatch.setattr(artifacts, "read_parquet", guarded)
    pipeline.train(ctx, None)
    out = store.read_all(store.train_paths(ctx.task_dir))
    chosen = {(r["setting"], r["network"]): r["w"] for r in out["selection"] if r["chosen"]}
    assert set(chosen) == {("table1", "paper"), ("table1", "study-0"), ("sparse-2x3", "study-0"),
                           ("forecast", "study-0")} and set(chosen.values()) <= {0.0, 0.1}
    adam = next(r for r in out["runs"] if r["setting"] == "table1" and r["optimizer"] == "adam")
    assert adam["residual_weight"] == chosen[("table1", "paper")]
    assert {r["setting"] for r in out["runs"]} >= {"forward", "sparse-2x3", "forecast", "soil"}
    # a study network's selection runs train as the study runs (their budget: 4), the paper's the short runs (3)
    lengths = {(r["network"], r["iterations"]) for r in out["selection"]}
    assert lengths == {("paper", 3), ("study-0", 4)}


def test_choose_network_takes_the_lowest_misfit_over_networks_and_weights():
    scores = {"study-0": {0.0: 2.0, 0.1: 1.5}, "study-1": {0.0: 1.2, 0.01: 1.6}}
    assert protocol.choose_network(scores) == ("study-1", 0.0)
    assert protocol.choose_network({"study-0": {0.0: 1.0, 0.1: 1.0}, "study-1": {0.1: 1.0}}) == ("study-0", 0.1)
    assert protocol.choose_network({"study-0": {0.0: float("inf")}, "study-1": {0.1: 3.0}}) == ("study-1", 0.1)
    with pytest.raises(UserError, match="every candidate network"):
        protocol.choose_network({"study-0": {0.0: float("nan")}})
