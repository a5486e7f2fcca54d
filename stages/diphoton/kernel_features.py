"""What the MMD kernel compares (MMD and MDMM losses, Sec. 2.3.2): the flow's standardized features, optionally
with physical columns appended. TensorFlow, no I/O.

The paper's kernel acts on the flow's own features (here standardized log pT, eta, phi). Table 1 then scores
Pearson correlations in physical units, which the tails of pT and of m_gg (set by the photons' pT and d eta)
dominate, while a kernel on standardized log pT weighs those tails little. ``extra`` appends, each standardized
on the training data:
  "pt"        the photons' pT in GeV (linear: the scale Table 1's pT correlations are computed on);
  "log_m_gg"  log m_gg, m_gg^2 = 2 pT1 pT2 (cosh(d eta) - cos(d phi)) of the event's two photons.
The kernel averages squared distances over all columns, so each appended column weighs as much as a feature.
"""

from __future__ import annotations

from . import tfenv  # noqa: F401

from collections.abc import Sequence  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from .events import PT_COLUMNS  # noqa: E402

EXTRA_COLUMNS = ("pt", "log_m_gg")
_M2_FLOOR = 1e-6  # GeV^2: keeps log m_gg finite for a (measure-zero) collinear pair


class KernelFeatures:
    """``features(z)``: (n, 6) standardized flow-space events -> (n, 6 + k) columns the kernel compares.
    ``scaler`` is the flow's standardization (pipeline.scaler: mean, std, log_pt); ``reference`` the standardized
    training data the appended columns are standardized on. With no ``extra`` it returns z unchanged."""

    def __init__(self, extra: Sequence[str], scaler: dict, reference: np.ndarray):
        unknown = sorted(set(extra) - set(EXTRA_COLUMNS))
        if unknown:
            raise ValueError(f"unknown kernel column(s) {unknown}; known: {list(EXTRA_COLUMNS)}")
        self.extra = tuple(extra)
        self.mean = tf.constant(np.asarray(scaler["mean"], np.float32))
        self.std = tf.constant(np.asarray(scaler["std"], np.float32))
        self.log_pt = bool(scaler.get("log_pt", False))
        self.shift = tf.zeros([0])
        self.scale = tf.ones([0])
        if self.extra:
            raw = self._raw(tf.constant(np.asarray(reference, np.float32))).numpy().astype(np.float64)
            self.shift = tf.constant(raw.mean(0).astype(np.float32))
            self.scale = tf.constant(raw.std(0).astype(np.float32))

    def _raw(self, z):
        """The appended columns of standardized events z, before their own standardization."""
        x = z * self.std + self.mean
        pt = [tf.exp(x[:, c]) if self.log_pt else x[:, c] for c in PT_COLUMNS]
        cols = []
        if "pt" in self.extra:
            cols += pt
        if "log_m_gg" in self.extra:
            d_eta, d_phi = x[:, 1] - x[:, 4], x[:, 2] - x[:, 5]
            m2 = 2.0 * pt[0] * pt[1] * (tf.cosh(d_eta) - tf.cos(d_phi))
            cols.append(0.5 * tf.math.log(tf.maximum(m2, _M2_FLOOR)))
        return tf.stack(cols, axis=1)

    def __call__(self, z):
        z = tf.convert_to_tensor(z, tf.float32)
        if not self.extra:
            return z
        return tf.concat([z, (self._raw(z) - self.shift) / self.scale], axis=1)
