"""The selection protocol and the study settings: which sensor readings a fit sees, which it holds out, and how
the residual weight w is chosen. Nothing here reads the solver's truth: every function takes only the sensor
coordinates (and the readings' times), so a user with the sensors alone could run it.

Settings (each a mask over the generated sensor readings):
  table1             all sensors (the paper's 15 locations x 5 layers x 30 times)
  sparse-<L>x<K>     L of the sensor locations (a seeded choice) x K of the layers (evenly spaced, ends kept)
  forecast           the sensors' readings at t <= t_split (the first part of the record); errors are reported
                     at the later times

The rule for w (and the same rule for every setting): train one network per candidate w on the setting's
readings minus a held-out block, score each by the RMS misfit on the held-out block, take the lowest (ties to
the larger w). The block is one sensor layer of the setting (the middle one of an odd number) for the spatial
settings (so the score measures what the network gives away from the sensor depths, where the physics has to
fill in) and the latest
``forecast_holdout`` part of the training window for the forecast (so it measures extrapolation in time). With
only two layers the deeper one is held out (the selection networks then see one layer).
The reported networks then train on all the setting's readings with the chosen w.

The study network (rre.train.networks) is chosen by the same rule on the table1 setting: every candidate network
with every candidate w, the lowest held-out misfit wins; the other settings then choose w for that network. The
paper's network keeps its own w (Table 1's paper rows).
"""

from __future__ import annotations

import numpy as np

from phys_ml.stages.common.errors import UserError


def sparse_mask(sensor_xyzt: np.ndarray, locations: int, layers: int, seed: int) -> np.ndarray:
    """Readings at ``locations`` of the sensor columns (seeded choice) and ``layers`` of the sensor depths
    (evenly spaced over the sorted depths, shallowest and deepest kept)."""
    cols, col_of = np.unique(sensor_xyzt[:, :2], axis=0, return_inverse=True)
    depths = np.unique(sensor_xyzt[:, 2])
    if locations > cols.shape[0] or layers > depths.size:
        raise UserError(f"rre sparse setting {locations}x{layers}: only {cols.shape[0]} sensor locations and "
                        f"{depths.size} layers were generated")
    keep_cols = np.random.default_rng(seed).permutation(cols.shape[0])[:locations]
    keep_depths = depths[np.unique(np.round(np.linspace(0, depths.size - 1, layers)).astype(int))]
    return np.isin(col_of.ravel(), keep_cols) & np.isin(sensor_xyzt[:, 2], keep_depths)


def forecast_split(sensor_times: np.ndarray, fraction: float) -> float:
    """t_split: the last sensor time within the first ``fraction`` of the record."""
    times = np.unique(sensor_times)
    k = max(int(np.floor(fraction * times.size)), 1)
    return float(times[k - 1])


def holdout_layer(sensor_xyzt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The readings (within ``mask``) of one sensor layer: the K // 2-th of the K sorted depths (the middle one
    for odd K, the deeper one of two)."""
    depths = np.unique(sensor_xyzt[mask, 2])
    if depths.size < 2:
        raise UserError("rre selection holds out one sensor layer: a setting needs at least 2 layers")
    return mask & (sensor_xyzt[:, 2] == depths[depths.size // 2])


def holdout_latest(sensor_times: np.ndarray, mask: np.ndarray, fraction: float) -> np.ndarray:
    """The readings (within ``mask``) at the latest ``fraction`` of the masked readings' times (at least one)."""
    times = np.unique(sensor_times[mask])
    n = max(int(round(fraction * times.size)), 1)
    if n >= times.size:
        raise UserError("rre selection: the forecast window has too few sensor times to hold any out")
    return mask & (sensor_times >= times[-n])


def choose(scores: dict[float, float]) -> float:
    """The candidate with the lowest held-out misfit; among equal scores the larger w. Non-finite scores lose."""
    finite = {w: s for w, s in scores.items() if np.isfinite(s)}
    if not finite:
        raise UserError("rre selection: every candidate weight diverged")
    return max(finite, key=lambda w: (-finite[w], w))


def choose_network(scores: dict[str, dict[float, float]]) -> tuple[str, float]:
    """The (network, w) with the lowest held-out misfit over every candidate network's candidate weights; among
    equal scores the larger w, then the earlier network."""
    order = list(scores)
    finite = {(net, w): s for net, by_w in scores.items() for w, s in by_w.items() if np.isfinite(s)}
    if not finite:
        raise UserError("rre selection: every candidate network and weight diverged")
    return min(finite, key=lambda k: (finite[k], -k[1], order.index(k[0])))
