"""Reader of ATLAS 13 TeV open-data diphoton ROOT files (2020 release, GamGam) through uproot (Sec. 2.1).

Tree ``mini``, momenta in MeV, per-event vector branches ``photon_pt/eta/phi/E/isTightID/ptcone30/etcone20``,
``photon_n`` and the trigger flag ``trigP``. This is an input adapter (it reads files); the selection itself
is ``events.selection_mask`` (pure). Returns (n, 6) FEATURES in GeV with the leading photon first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from phys_ml.stages.common.errors import UserError

from .events import selection_mask

TREE = "mini"
MEV_PER_GEV = 1000.0
PHOTON_BRANCHES = ("photon_n", "photon_pt", "photon_eta", "photon_phi")


def read_events(paths: list[str | Path], require_tight_id: bool = False, require_trigger: bool = False,
                step_size: str = "100 MB") -> np.ndarray:
    """Events with exactly two photons passing the paper's selection, from one or more ROOT files."""
    import awkward as ak
    import uproot

    if not paths:
        raise UserError("diphoton.generate.opendata: no ROOT files given")
    branches = list(PHOTON_BRANCHES)
    if require_tight_id:
        branches.append("photon_isTightID")
    if require_trigger:
        branches.append("trigP")
    parts = []
    for path in map(Path, paths):
        if not path.is_file():
            raise UserError(f"{path}: ROOT file not found")
        try:
            file = uproot.open(path)
        except Exception as exc:  # uproot raises several types for a non-ROOT or truncated file
            raise UserError(f"{path} is not a readable ROOT file ({type(exc).__name__})") from None
        with file:
            if TREE not in file:
                raise UserError(f"{path} has no tree '{TREE}'")
            tree = file[TREE]
            missing = [b for b in branches if b not in tree.keys()]
            if missing:
                raise UserError(f"{path}: tree '{TREE}' lacks branch(es) {', '.join(missing)}")
            for arrays in tree.iterate(branches, step_size=step_size, library="ak"):
                parts.append(_select(arrays, ak, require_tight_id, require_trigger))
    return np.concatenate(parts) if parts else np.empty((0, 6))


def _select(arrays, ak, require_tight_id: bool, require_trigger: bool) -> np.ndarray:
    """Exactly two photons (+ optional tight ID and trigger), MeV -> GeV, pT-ordered, then the kinematic cuts."""
    keep = (arrays["photon_n"] == 2) & (ak.num(arrays["photon_pt"]) == 2)
    if require_tight_id:
        keep = keep & ak.all(arrays["photon_isTightID"], axis=1)
    if require_trigger:
        keep = keep & (arrays["trigP"] != 0)
    sel = arrays[keep]
    pt = ak.to_numpy(sel["photon_pt"]).astype(np.float64) / MEV_PER_GEV
    eta = ak.to_numpy(sel["photon_eta"]).astype(np.float64)
    phi = ak.to_numpy(sel["photon_phi"]).astype(np.float64)
    if len(pt) == 0:
        return np.empty((0, 6))
    order = np.argsort(-pt, axis=1, kind="stable")
    pt, eta, phi = (np.take_along_axis(a, order, axis=1) for a in (pt, eta, phi))
    x = np.column_stack([pt[:, 0], eta[:, 0], phi[:, 0], pt[:, 1], eta[:, 1], phi[:, 1]])
    return x[selection_mask(x)]
