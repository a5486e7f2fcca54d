"""The reference for what a marginal-only loss asks of the flow (issue 24). Pure numpy.

The KL loss (Sec. 2.3.1) compares only the six 1-D marginals, so every transport of the MC that gives the data's
marginals is at its minimum, whatever the correlations. The simplest of them moves each feature alone by its
monotone (quantile) map: x_j -> F_data,j^-1(F_MC,j(x_j)). It keeps the MC's rank correlations exactly, so how far
a KL-trained flow's correlations move beyond this one's comes from how its delta couples the features (delta_j
depending on the other features of x_c) and from its random part, not from the loss.
"""

from __future__ import annotations

import numpy as np


def marginal_transport(x: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Each column of x mapped by the quantile map taking ``source``'s distribution of it to ``target``'s."""
    out = np.empty(x.shape, np.float64)
    for j in range(x.shape[1]):
        src = np.sort(source[:, j])
        level = (np.searchsorted(src, x[:, j], side="left") + np.searchsorted(src, x[:, j], side="right")) / 2.0
        out[:, j] = np.quantile(target[:, j], np.clip(level / len(src), 0.0, 1.0))
    return out
