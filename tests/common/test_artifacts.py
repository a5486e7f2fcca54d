import numpy as np
import pyarrow as pa
import pytest

from phys_ml.stages.common import artifacts
from phys_ml.stages.common.errors import UserError


def sample_table():
    rng = np.random.default_rng(0)
    return pa.table({
        "x": rng.normal(size=5),
        "vec": artifacts.fixed_size_list(rng.normal(size=(5, 3, 2))),
        "seq": artifacts.list_column([rng.normal(size=(n, 2)) for n in (1, 2, 3, 4, 5)]),
    })


def test_parquet_round_trip_keeps_data_and_metadata(tmp_path):
    table = sample_table()
    path = artifacts.write_parquet(table, tmp_path / "a.parquet", task="t", stage="generate", seed=7,
                                   params={"n": 5}, extra={"units": "m"})
    back, meta = artifacts.read_parquet(path)
    assert back.equals(table)
    assert meta["task"] == "t" and meta["stage"] == "generate" and meta["seed"] == 7
    assert meta["params"] == {"n": 5} and meta["units"] == "m" and "package_version" in meta
    vec = artifacts.fixed_size_to_numpy(back["vec"], (3, 2))
    np.testing.assert_array_equal(vec, artifacts.fixed_size_to_numpy(table["vec"], (3, 2)))
    seqs = artifacts.list_column_to_numpy(back["seq"], width=2)
    assert [s.shape for s in seqs] == [(n, 2) for n in (1, 2, 3, 4, 5)]


def test_same_table_gives_same_bytes(tmp_path):
    a = artifacts.write_parquet(sample_table(), tmp_path / "a.parquet", task="t", stage="s", seed=1, params={})
    b = artifacts.write_parquet(sample_table(), tmp_path / "b.parquet", task="t", stage="s", seed=1, params={})
    assert a.read_bytes() == b.read_bytes()


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path):
    target = artifacts.write_json(tmp_path / "m.json", {"a": 1})
    with pytest.raises(TypeError):
        artifacts.write_json(target, {"a": object()})
    assert artifacts.read_json(target) == {"a": 1}


def test_missing_and_corrupt_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        artifacts.read_parquet(tmp_path / "none.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(UserError, match="not a readable Parquet file"):
        artifacts.read_parquet(bad)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        artifacts.read_json(bad_json)


def test_torch_state_round_trip(tmp_path):
    import torch

    state = torch.nn.Linear(3, 2).state_dict()
    path = artifacts.save_torch(state, tmp_path / "m.pt")
    back = artifacts.load_torch(path)
    assert all(torch.equal(state[k], back[k]) for k in state)
