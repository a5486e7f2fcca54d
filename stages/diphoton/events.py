"""Diphoton event features, invariant mass and the paper's selection (Sec. 2.1). Pure numpy, no I/O."""

from __future__ import annotations

import numpy as np

# The 6 training features of the paper (Sec. 2.1), in this order everywhere; m_gg is derived from them.
FEATURES = ("pt1", "eta1", "phi1", "pt2", "eta2", "phi2")
COLUMNS = (*FEATURES, "m_gg")
UNITS = {"pt1": "GeV", "pt2": "GeV", "m_gg": "GeV", "eta1": "", "eta2": "", "phi1": "rad", "phi2": "rad"}

# Selection of Sec. 2.1 (GeV): 60 <= m_gg <= 300, 35 <= pT1 <= 250, 25 <= pT2 <= 250,
# |eta| <= 1.37 or 1.52 <= |eta| <= 2.37 (the barrel/end-cap crack removed), |phi| <= pi.
M_RANGE = (60.0, 300.0)
PT1_RANGE = (35.0, 250.0)
PT2_RANGE = (25.0, 250.0)
ETA_BARREL = 1.37
ETA_CRACK = (1.37, 1.52)
ETA_MAX = 2.37


def invariant_mass(pt1, eta1, phi1, pt2, eta2, phi2):
    """m_gg of two massless photons: m^2 = 2 pT1 pT2 (cosh(d eta) - cos(d phi))."""
    m2 = 2.0 * pt1 * pt2 * (np.cosh(eta1 - eta2) - np.cos(phi1 - phi2))
    return np.sqrt(np.maximum(m2, 0.0))


def eta_accepted(eta):
    """|eta| <= 1.37 or 1.52 <= |eta| <= 2.37."""
    a = np.abs(eta)
    return (a <= ETA_BARREL) | ((a >= ETA_CRACK[1]) & (a <= ETA_MAX))


def selection_mask(x: np.ndarray) -> np.ndarray:
    """Boolean mask of events (rows of x with the FEATURES columns, pT1 >= pT2) passing the paper's cuts."""
    pt1, eta1, phi1, pt2, eta2, phi2 = (x[:, i] for i in range(6))
    m = invariant_mass(pt1, eta1, phi1, pt2, eta2, phi2)
    return (
        (m >= M_RANGE[0]) & (m <= M_RANGE[1])
        & (pt1 >= PT1_RANGE[0]) & (pt1 <= PT1_RANGE[1])
        & (pt2 >= PT2_RANGE[0]) & (pt2 <= PT2_RANGE[1])
        & eta_accepted(eta1) & eta_accepted(eta2)
        & (np.abs(phi1) <= np.pi) & (np.abs(phi2) <= np.pi)
    )


def with_mass(x: np.ndarray) -> np.ndarray:
    """(n, 6) features -> (n, 7) with m_gg appended."""
    m = invariant_mass(*(x[:, i] for i in range(6)))
    return np.column_stack([x, m])


def order_by_pt(pt_a, eta_a, phi_a, pt_b, eta_b, phi_b) -> np.ndarray:
    """Stack two photons into (n, 6) FEATURES with the leading (higher pT) photon first."""
    lead = pt_a >= pt_b
    return np.column_stack([
        np.where(lead, pt_a, pt_b), np.where(lead, eta_a, eta_b), np.where(lead, phi_a, phi_b),
        np.where(lead, pt_b, pt_a), np.where(lead, eta_b, eta_a), np.where(lead, phi_b, phi_a),
    ])


PT_COLUMNS = (0, 3)  # pt1, pt2 in FEATURES


def to_flow_space(x: np.ndarray, log_pt: bool) -> np.ndarray:
    """Features as the flow sees them (before standardization): pT -> log pT if ``log_pt`` (keeps transformed
    pT positive and compresses the falling pT tails, which dominate the Pearson correlations)."""
    x = np.array(x, np.float64)
    if log_pt:
        x[:, PT_COLUMNS] = np.log(x[:, PT_COLUMNS])
    return x


def from_flow_space(z: np.ndarray, log_pt: bool) -> np.ndarray:
    """Inverse of ``to_flow_space``."""
    z = np.array(z, np.float64)
    if log_pt:
        z[:, PT_COLUMNS] = np.exp(z[:, PT_COLUMNS])
    return z


def reorder_by_pt(x: np.ndarray) -> tuple[np.ndarray, float]:
    """(n, 6) FEATURES with the leading photon first again, and the fraction of events whose photons swapped
    (a transformed event can come out with pT2 > pT1; "leading" is defined as the higher pT)."""
    swapped = x[:, 3] > x[:, 0]
    return order_by_pt(*(x[:, i] for i in range(6))), float(swapped.mean())


def to_physical_range(x: np.ndarray, pt_max: float, eta_max: float) -> tuple[np.ndarray, float, float]:
    """Transformed events brought back into the physical range: phi wrapped into [-pi, pi) (m_gg unchanged), pT
    capped at ``pt_max`` and |eta| at ``eta_max`` (the largest of the training events: a rare far tail of the flow,
    mapped through exp(log pT), can otherwise give a single event of ~10 TeV that dominates a Pearson correlation,
    and a flow trained on marginals alone can send eta so far that cosh(eta1 - eta2) in m_gg overflows). Returns the
    events, the fraction with a capped pT or |eta| and the fraction with a wrapped phi."""
    x = np.array(x, np.float64)
    phi, eta = [2, 5], [1, 4]
    wrapped = np.any(np.abs(x[:, phi]) > np.pi, axis=1)
    x[:, phi] = (x[:, phi] + np.pi) % (2.0 * np.pi) - np.pi
    capped = np.any(x[:, PT_COLUMNS] > pt_max, axis=1) | np.any(np.abs(x[:, eta]) > eta_max, axis=1)
    x[:, PT_COLUMNS] = np.minimum(x[:, PT_COLUMNS], pt_max)
    x[:, eta] = np.clip(x[:, eta], -eta_max, eta_max)
    return x, float(capped.mean()), float(wrapped.mean())
