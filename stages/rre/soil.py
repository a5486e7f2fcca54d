"""Van Genuchten-Mualem constitutive functions (paper eq. 2) and their derivatives in psi.

Every function works on NumPy arrays and torch tensors alike. Pressure head psi is in cm (negative when
unsaturated); for psi >= 0 the soil is saturated: theta = theta_s, K = K_s, both derivatives 0.
With u = alpha * |psi| and S = 1 + u^n:
    theta = theta_r + (theta_s - theta_r) S^-m
    K     = K_s (1 - u^(n-1) S^-m)^2 S^(-m/2)          (m = 1 - 1/n)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from phys_ml.stages.common.errors import UserError


@dataclass(frozen=True)
class VanGenuchten:
    """Soil parameters in cm and s. Defaults: the New Mexico soil of Celia et al. (1990) used by MRST."""

    alpha: float = 0.0335  # 1/cm
    n: float = 2.0
    theta_s: float = 0.368
    theta_r: float = 0.102
    k_s: float = 0.00922  # cm/s

    def __post_init__(self) -> None:
        if not self.alpha > 0:
            raise UserError(f"soil alpha must be > 0, got {self.alpha}")
        if not self.n > 1:
            raise UserError(f"soil n must be > 1, got {self.n}")
        if not 0 <= self.theta_r < self.theta_s <= 1:
            raise UserError(f"soil needs 0 <= theta_r < theta_s <= 1, got {self.theta_r}, {self.theta_s}")
        if not self.k_s > 0:
            raise UserError(f"soil k_s must be > 0, got {self.k_s}")

    @property
    def m(self) -> float:
        return 1.0 - 1.0 / self.n

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _suction(psi: Any, alpha: float) -> Any:
    """u = alpha * max(-psi, 0): zero when saturated."""
    if hasattr(psi, "clamp"):  # torch
        return alpha * (-psi).clamp(min=0.0)
    import numpy as np

    return alpha * np.maximum(-np.asarray(psi, dtype=float), 0.0)


def _positive(u: Any) -> Any:
    """u kept away from 0, so u^(n-2) stays finite for n < 2 (its factor vanishes there anyway)."""
    if hasattr(u, "clamp"):
        return u.clamp(min=1e-30)
    import numpy as np

    return np.maximum(u, 1e-30)


def theta(psi: Any, soil: VanGenuchten) -> Any:
    """Volumetric water content (eq. 2, first line)."""
    u = _suction(psi, soil.alpha)
    return soil.theta_r + (soil.theta_s - soil.theta_r) * (1.0 + u**soil.n) ** (-soil.m)


def capacity(psi: Any, soil: VanGenuchten) -> Any:
    """Specific moisture capacity C = d theta / d psi = (theta_s - theta_r) alpha m n u^(n-1) S^(-m-1)."""
    n, m = soil.n, soil.m
    u = _suction(psi, soil.alpha)
    return (soil.theta_s - soil.theta_r) * soil.alpha * m * n * u ** (n - 1) * (1.0 + u**n) ** (-m - 1)


def conductivity(psi: Any, soil: VanGenuchten) -> Any:
    """Hydraulic conductivity K (eq. 2, second line)."""
    n, m = soil.n, soil.m
    u = _suction(psi, soil.alpha)
    s = 1.0 + u**n
    a = 1.0 - u ** (n - 1) * s ** (-m)
    return soil.k_s * a**2 * s ** (-m / 2)


def conductivity_derivative(psi: Any, soil: VanGenuchten) -> Any:
    """dK/dpsi. With A = 1 - u^(n-1) S^-m: dA/du = -(n-1) u^(n-2) S^(-m-1) (using m n = n - 1)."""
    n, m = soil.n, soil.m
    u = _suction(psi, soil.alpha)
    s = 1.0 + u**n
    a = 1.0 - u ** (n - 1) * s ** (-m)
    b = s ** (-m / 2)
    da = -(n - 1) * _positive(u) ** (n - 2) * s ** (-m - 1)
    db = -(m / 2) * n * u ** (n - 1) * s ** (-m / 2 - 1)
    dk_du = soil.k_s * (2 * a * da * b + a**2 * db)
    # du/dpsi = -alpha where unsaturated, 0 where saturated
    unsat = (u > 0) * 1.0
    return -soil.alpha * dk_du * unsat


def head(theta_value: float, soil: VanGenuchten) -> float:
    """The pressure head (cm) at which the retention curve gives ``theta_value`` (the inverse of ``theta``):
    0 at or above theta_s; theta_value is kept 0.1 % of the range above theta_r, where psi is still finite."""
    import numpy as np

    se = float(np.clip((theta_value - soil.theta_r) / (soil.theta_s - soil.theta_r), 1e-3, 1.0))
    return -float((se ** (-1.0 / soil.m) - 1.0) ** (1.0 / soil.n)) / soil.alpha
