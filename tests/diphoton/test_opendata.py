"""The ATLAS open-data reader on small ROOT files written here with uproot."""

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from phys_ml.stages.common.errors import UserError
from phys_ml.stages.diphoton.opendata import read_events

MEV = 1000.0


def _write(path, photons, trig=None, tight=None, drop=()):
    """photons: list of events, each a list of (pt_GeV, eta, phi)."""
    branches = {
        "photon_n": np.array([len(e) for e in photons], np.uint32),
        "photon_pt": ak.Array([[p[0] * MEV for p in e] for e in photons]),
        "photon_eta": ak.Array([[p[1] for p in e] for e in photons]),
        "photon_phi": ak.Array([[p[2] for p in e] for e in photons]),
        "photon_E": ak.Array([[p[0] * MEV * np.cosh(p[1]) for p in e] for e in photons]),
        "photon_isTightID": ak.Array(tight if tight is not None else [[True] * len(e) for e in photons]),
        "trigP": np.array(trig if trig is not None else [True] * len(photons)),
    }
    with uproot.recreate(path) as f:
        f["mini"] = {k: v for k, v in branches.items() if k not in drop}
    return path


GOOD = [(40.0, 0.5, 1.0), (70.0, -0.3, 1.0 - np.pi)]  # unordered: the subleading photon first


def test_reader_applies_cuts_and_converts_mev(tmp_path):
    events = [
        GOOD,
        [*GOOD, (30.0, 0.1, 0.0)],  # three photons
        [(40.0, 1.45, 1.0), (70.0, -0.3, 1.0 - np.pi)],  # crack
        [(20.0, 0.5, 1.0), (70.0, -0.3, 1.0 - np.pi)],  # pT2 < 25 GeV
        [(40.0, 0.0, 0.0), (36.0, 0.0, 0.2)],  # m_gg < 60 GeV
        [(80.0, 1.0, -2.0), (60.0, -0.5, 1.0)],  # m_gg ~ 179 GeV
    ]
    x = read_events([_write(tmp_path / "a.root", events)])
    assert x.shape == (2, 6)
    np.testing.assert_allclose(x[0], [70.0, -0.3, 1.0 - np.pi, 40.0, 0.5, 1.0], rtol=1e-6)  # GeV, pT-ordered
    np.testing.assert_allclose(x[1, [0, 3]], [80.0, 60.0])


def test_reader_optional_trigger_and_tight_id(tmp_path):
    path = _write(tmp_path / "b.root", [GOOD, GOOD, GOOD], trig=[True, False, True],
                  tight=[[True, True], [True, True], [True, False]])
    assert len(read_events([path])) == 3
    assert len(read_events([path], require_trigger=True)) == 2
    assert len(read_events([path], require_tight_id=True, require_trigger=True)) == 1


def test_reader_bad_inputs(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_events([tmp_path / "missing.root"])
    junk = tmp_path / "junk.root"
    junk.write_text("not a ROOT file")
    with pytest.raises(UserError, match="not a readable ROOT file"):
        read_events([junk])
    other = tmp_path / "other.root"
    with uproot.recreate(other) as f:
        f["events"] = {"x": np.zeros(3)}
    with pytest.raises(UserError, match="no tree 'mini'"):
        read_events([other])
    with pytest.raises(UserError, match="photon_phi"):
        read_events([_write(tmp_path / "c.root", [GOOD], drop=("photon_phi",))])
    with pytest.raises(UserError, match="no ROOT files"):
        read_events([])


def test_generate_stage_reads_opendata_files(tmp_path):
    """Simulated events written as open-data ROOT files (MeV, photons in random order) come back through the
    generate stage unchanged (GeV, pT-ordered)."""
    from phys_ml.stages.common.context import StageContext
    from phys_ml.stages.common.params import deep_merge, load_params
    from phys_ml.stages.diphoton import pipeline, simulate, store

    rng = np.random.default_rng(0)
    paths = {}
    for name, model in (("mc", simulate.MC_MODEL), ("data", simulate.DATA_MODEL)):
        x = simulate.simulate(model, 150, seed=3, chunk=2000)
        swap = rng.random(len(x)) < 0.5
        lead, sub = x[:, :3], x[:, 3:]
        first, second = np.where(swap[:, None], sub, lead), np.where(swap[:, None], lead, sub)
        _write(tmp_path / f"{name}.root", [[tuple(a), tuple(b)] for a, b in zip(first, second)])
        paths[name] = x
    params = deep_merge(load_params(Path(__file__).resolve().parents[2] / "params.yaml"), {"diphoton": {
        "generate": {"source": "opendata", "n_mc": 150, "n_data": 150, "seed": 0, "opendata": {
            "mc_files": [str(tmp_path / "mc.root")], "data_files": [str(tmp_path / "data.root")]}}}})
    pipeline.generate(StageContext(task="diphoton", params=params, data_dir=tmp_path), None)
    back = store.read_sample(tmp_path / "diphoton", "mc")
    order = np.lexsort(back.T[::-1])
    expect = paths["mc"][np.lexsort(paths["mc"].T[::-1])]
    np.testing.assert_allclose(back[order], expect, rtol=1e-5, atol=1e-5)
