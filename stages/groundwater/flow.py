"""Amortized posterior of the 706 ln K values: a summary network and a conditional coupling flow (paper Sec. 3).

- `PriorWhitening`: ln K <-> whitened coordinates z = Lambda^-1/2 Phi^T (y - mu), from the eigendecomposition
  C = Phi Lambda Phi^T of the Gaussian-process prior (Karhunen-Loeve order, largest variance first). Under the
  prior z ~ N(0, I), so a flow that starts at the identity starts at the prior; ln p(y) = ln p(z) - 1/2 sum ln
  lambda_k.
- `SummaryCNN`: the paper's 1-D CNN over time. Input the standardized heads (B, 13 wells, 25 steps) and a mask
  of observed entries; masked values are zeroed before the network sees them and the mask is a second set of
  channels, so a missing value cannot leak into the summary and one model serves incomplete data.
- `ConditionalCouplingFlow`: alternating conditional affine coupling (cINN) and rational-quadratic spline
  coupling (cNSF) layers, affine first, built from zuko's `GeneralCouplingTransform` with
  `MonotonicAffineTransform` / `MonotonicRQSTransform` (zuko writes the spline, not us). Every hyper-network is
  an MLP with dropout whose last layer starts at zero, so each layer starts as the identity.
- `AmortizedPosterior` joins them: ``log_prob(z, heads, mask)`` is the training objective of eq. 22
  (maximum likelihood of z under the flow conditioned on the summary), ``sample_lnk`` draws ln K.
  With ``coupling_dims = k`` (ours) the couplings act on the k leading prior modes, which the 13 wells inform,
  and the other 706 - k modes keep the prior N(0, I) (``rest = "prior"``), get a conditional diagonal Gaussian
  (``"diagonal"``) or, for the next ``rest_modes`` of them, the linear-Gaussian conditional of
  `LinearGaussianRest` (``"linear"``, given the heads or the heads and the coupled modes; the rest keep the
  prior): 4,800 training pairs cannot teach a flow over 706
  inputs without memorizing them (the training loss falls while the validation loss rises within a few epochs),
  and the cost falls by an order of magnitude. ``None`` couples all 706, as in the paper.
Shapes: heads and mask (B, 13, 25); z (B, 706).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
from torch import nn
from zuko.flows import GeneralCouplingTransform
from zuko.flows.gaussianization import ElementWiseTransform
from zuko.lazy import Flow, UnconditionalDistribution
from zuko.distributions import DiagNormal
from zuko.transforms import MonotonicAffineTransform, MonotonicRQSTransform

from .prior import kl_decomposition


@dataclass(frozen=True)
class FlowSizes:
    """Architecture sizes (params: groundwater.flow.model, whose config carries the bounds)."""

    n_affine: int  # cACL layers
    n_spline: int  # cSL layers, alternating with the affine ones (affine first)
    hidden: int  # width of every coupling sub-network (two hidden layers)
    bins: int  # spline bins
    spline_bound: float  # the spline is the identity outside [-bound, bound] (z is whitened)
    coupling_dims: int | None  # leading whitened coordinates the couplings act on (None: all)
    rest: str  # the other coordinates: "prior" (N(0, I), no parameters), "diagonal" (N(mu(c), s(c)^2)) or "linear"
    dropout: float
    summary_dim: int
    conv_channels: int
    mask_seed: int  # seed of the random half-masks of the coupling layers
    elementwise: bool  # a conditional elementwise affine layer first (ours: a Gaussian start for the flow)
    linear_modes: int  # 0: off; else the linear summary in this many leading modes joins the CNN summary (ours)
    rest_modes: int  # rest "linear": the modes after the coupled ones with the linear-Gaussian conditional
    rest_given: str = "heads"  # rest "linear": conditioned on the "heads" or the "heads_and_coupled" modes


class ReLUDropout(nn.Sequential):
    """The activation of the coupling sub-networks: ReLU then dropout."""

    def __init__(self, p: float):
        super().__init__(nn.ReLU(), nn.Dropout(p))


def contiguous_rqs(widths: torch.Tensor, heights: torch.Tensor, derivatives: torch.Tensor,
                   bound: float) -> MonotonicRQSTransform:
    """zuko's spline on contiguous parameter tensors: its softmax over bins runs faster on the CPU than on the
    strided views the coupling layer hands over (about 1.3x per training step, measured under load)."""
    return MonotonicRQSTransform(widths.contiguous(), heights.contiguous(), derivatives.contiguous(), bound=bound)


class PriorWhitening(nn.Module):
    """ln K <-> z for the Gaussian prior N(mean, cov); buffers only (saved with the model)."""

    def __init__(self, mean: np.ndarray, cov: np.ndarray):
        super().__init__()
        lam, phi = kl_decomposition(cov)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("to_z", torch.as_tensor((phi / np.sqrt(lam)).T, dtype=torch.float32))  # (706, 706)
        self.register_buffer("to_y", torch.as_tensor(phi * np.sqrt(lam), dtype=torch.float32))
        self.register_buffer("half_logdet", torch.tensor(0.5 * np.log(lam).sum(), dtype=torch.float64))

    def forward(self, lnk: torch.Tensor) -> torch.Tensor:
        return (lnk - self.mean) @ self.to_z.T

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self.mean + z @ self.to_y.T


class SummaryCNN(nn.Module):
    """(B, wells, steps) standardized heads + mask -> (B, summary_dim); 1-D convolutions along time."""

    def __init__(self, n_wells: int, n_steps: int, channels: int, out_dim: int):
        super().__init__()
        c = channels
        self.conv = nn.Sequential(
            nn.Conv1d(2 * n_wells, c, 3, padding=1), nn.GELU(),
            nn.Conv1d(c, c, 3, padding=1, stride=2), nn.GELU(),
            nn.Conv1d(c, c, 3, padding=1, stride=2), nn.GELU(),
        )
        steps = n_steps
        for _ in range(2):
            steps = (steps - 1) // 2 + 1
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * steps, 2 * out_dim), nn.GELU(),
                                  nn.Linear(2 * out_dim, out_dim))

    def forward(self, heads: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.to(heads.dtype)
        x = torch.where(mask, heads, torch.zeros((), dtype=heads.dtype, device=heads.device))
        return self.head(self.conv(torch.cat([x, m], dim=1)))


def coupling_masks(features: int, n_layers: int, seed: int) -> list[torch.Tensor]:
    """Random half-masks (True = conditioning half); each odd layer takes the complement of the one before, so
    every coordinate is transformed by every pair of layers."""
    gen = torch.Generator().manual_seed(seed)
    masks: list[torch.Tensor] = []
    for i in range(n_layers):
        masks.append(torch.randperm(features, generator=gen) < features // 2 if i % 2 == 0 else ~masks[-1])
    return masks


def _zero_last(layer: nn.Module) -> None:
    """Start a zuko layer as the identity: its hyper-network's last linear layer outputs zeros."""
    nn.init.zeros_(layer.hyper[-1].weight)
    nn.init.zeros_(layer.hyper[-1].bias)


def _base(features: int) -> UnconditionalDistribution:
    return UnconditionalDistribution(DiagNormal, torch.zeros(features), torch.ones(features), buffer=True)


class ConditionalCouplingFlow(Flow):
    """Alternating conditional affine and spline couplings (affine first) over a standard normal base (zuko)."""

    def __init__(self, features: int, context: int, sizes: FlowSizes):
        kinds = []
        for i in range(max(sizes.n_affine, sizes.n_spline)):
            kinds += (["affine"] if i < sizes.n_affine else []) + (["spline"] if i < sizes.n_spline else [])
        mlp = dict(hidden_features=(sizes.hidden, sizes.hidden), activation=partial(ReLUDropout, sizes.dropout))
        layers = []
        if sizes.elementwise:
            layers.append(ElementWiseTransform(features, context, univariate=MonotonicAffineTransform,
                                               shapes=((), ()), **mlp))
        b = sizes.bins
        spline = partial(contiguous_rqs, bound=sizes.spline_bound)
        for kind, mask in zip(kinds, coupling_masks(features, len(kinds), sizes.mask_seed), strict=True):
            univariate, shapes = ((MonotonicAffineTransform, ((), ())) if kind == "affine"
                                  else (spline, ((b,), (b,), (b - 1,))))
            layers.append(GeneralCouplingTransform(features, context, mask=mask, univariate=univariate,
                                                   shapes=shapes, **mlp))
        for layer in layers:
            _zero_last(layer)
        super().__init__(layers, _base(features))
        self.kinds = kinds


class ConditionalDiagonalFlow(Flow):
    """A conditional elementwise affine map over a standard normal base: q(z | c) = N(mu(c), diag sigma(c)^2)."""

    def __init__(self, features: int, context: int, sizes: FlowSizes):
        layer = ElementWiseTransform(features, context, univariate=MonotonicAffineTransform, shapes=((), ()),
                                     hidden_features=(sizes.hidden, sizes.hidden),
                                     activation=partial(ReLUDropout, sizes.dropout))
        _zero_last(layer)
        super().__init__([layer], _base(features))


class LinearSummary(nn.Module):
    """What the heads say about the k leading modes in the linear limit (ours): with J0 = dG/dz at the prior
    mean (computed once, offline, `train groundwater jacobian`) and G0 the heads there, the posterior mean of
    the linearized model, m = (I + J0^T M J0 / s^2)^-1 J0^T M (d - G0) / s^2 (M the mask of observed values),
    standardized with training-split statistics. It carries the score J0^T R^-1 (d - G0) in a well-scaled form."""

    def __init__(self, n_obs: int, k: int):
        super().__init__()
        self.register_buffer("jac", torch.zeros(n_obs, k))
        self.register_buffer("sim0", torch.zeros(n_obs))
        self.register_buffer("noise_sd", torch.ones(()))
        self.register_buffer("shift", torch.zeros(k))
        self.register_buffer("scale", torch.ones(k))

    def set_linearization(self, jac: np.ndarray, sim0: np.ndarray, noise_sd: float) -> None:
        k = self.jac.shape[1]
        if jac.shape[1] < k:
            raise ValueError(f"the Jacobian has {jac.shape[1]} modes, the linear summary needs {k}")
        self.jac.copy_(torch.as_tensor(jac[:, :k]))
        self.sim0.copy_(torch.as_tensor(sim0))
        self.noise_sd.fill_(float(noise_sd))

    def raw(self, heads: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, k) linear posterior mean; heads and mask (B, wells, steps), well-major like the Jacobian rows."""
        m = mask.reshape(len(mask), -1).double()
        r = torch.nan_to_num(heads).reshape(len(heads), -1).double() - self.sim0.double()
        j = self.jac.double() / self.noise_sd.double()
        jm = j[None] * m[..., None]  # (B, n_obs, k)
        prec = torch.eye(j.shape[1], dtype=torch.float64, device=j.device) + jm.transpose(1, 2) @ j[None]
        rhs = (jm.transpose(1, 2) @ (r * m / self.noise_sd.double())[..., None])
        # prec is symmetric positive definite (I + ...): Cholesky (MKL's batched LU failed here with 2 threads
        # for ~250 modes: "Pivots given to lu_solve must all be greater or equal to 1")
        return torch.cholesky_solve(rhs, torch.linalg.cholesky(prec))[..., 0].to(heads.dtype)

    def forward(self, heads: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (self.raw(heads, mask) - self.shift) / self.scale


class LinearGaussianRest(nn.Module):
    """q(z_r | heads[, z_c]) = N(B [f; z_c; 1], L L^T) over ``modes`` whitened coordinates (ours,
    ``rest = "linear"``): f the linearized posterior mean in the leading ``features`` modes (a `LinearSummary`'s
    raw output), z_c the ``coupled`` leading modes (0: not given; else the flow's draw of them), B and L fitted
    in closed form on the training pairs (``fit``: least squares and the covariance of the residuals, the
    maximum-likelihood linear-Gaussian conditional). q(z) = q_flow(z_c | heads) q_rest(z_r | heads, z_c): the
    rest's factor has its own parameters, so its maximum-likelihood fit separates from the flow's training
    (given z_c, the true coupled modes of the training pairs) and needs no gradient steps. Given the heads only,
    q leaves out the dependence of z_r on z_c given the heads; given z_c too, it keeps its linear part."""

    RIDGE = 1.0  # a unit Gaussian prior on the coefficients (whitened units): keeps the fit well posed

    def __init__(self, n_obs: int, features: int, modes: int, coupled: int = 0):
        super().__init__()
        self.modes, self.coupled = modes, coupled
        self.summary = LinearSummary(n_obs, features)
        self.register_buffer("coef", torch.zeros(features + coupled + 1, modes))
        self.register_buffer("chol", torch.eye(modes))
        self.register_buffer("fitted", torch.tensor(False))  # until fitted: the prior N(0, I) (the flow trains so)

    @property
    def given(self) -> str:
        return "heads_and_coupled" if self.coupled else "heads"

    def _design(self, heads: torch.Tensor, mask: torch.Tensor, z_c: torch.Tensor | None) -> torch.Tensor:
        f = self.summary.raw(heads, mask)
        if self.coupled:
            f = torch.cat([f.expand(len(z_c), -1), z_c.to(f.dtype)], dim=-1)
        return torch.cat([f, torch.ones_like(f[:, :1])], dim=-1)

    def mean(self, heads: torch.Tensor, mask: torch.Tensor, z_c: torch.Tensor | None = None) -> torch.Tensor:
        return self._design(heads, mask, z_c) @ self.coef

    def log_prob(self, z: torch.Tensor, heads: torch.Tensor, mask: torch.Tensor,
                 z_c: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) ln N(z | mean(heads, z_c), L L^T) for z (B, modes), z_c (B, coupled)."""
        if not self.fitted:
            return torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
        white = torch.linalg.solve_triangular(self.chol, (z - self.mean(heads, mask, z_c)).T, upper=False).T
        return (-0.5 * white.pow(2).sum(-1) - torch.log(torch.diagonal(self.chol)).sum()
                - 0.5 * self.modes * math.log(2 * math.pi))

    def sample(self, eps: torch.Tensor, heads: torch.Tensor, mask: torch.Tensor,
               z_c: torch.Tensor | None = None) -> torch.Tensor:
        """Draws for one data set (heads, mask (1, wells, steps)) from standard normal ``eps`` (n, modes), given
        the n draws z_c (n, coupled) of the coupled modes."""
        return self.mean(heads, mask, z_c) + eps @ self.chol.T if self.fitted else eps

    @torch.no_grad()
    def fit(self, heads: torch.Tensor, mask: torch.Tensor, z: torch.Tensor, z_c: torch.Tensor | None = None,
            batch: int = 1000) -> None:
        """Fit on observed heads and masks (N, wells, steps), the matching whitened coordinates z (N, modes) and,
        when ``coupled``, the true coupled modes z_c (N, coupled)."""
        z_c = z_c if self.coupled else torch.empty(len(heads), 0, device=heads.device)
        x = torch.cat([self._design(h, m, c) for h, m, c in zip(torch.split(heads, batch), torch.split(mask, batch),
                                                                  torch.split(z_c, batch))])
        x, z = x.double(), z.double()
        coef = torch.linalg.solve(x.T @ x + self.RIDGE * torch.eye(x.shape[1], dtype=x.dtype), x.T @ z)
        res = z - x @ coef
        self.coef.copy_(coef)
        self.chol.copy_(torch.linalg.cholesky(res.T @ res / len(res)))
        self.fitted.fill_(True)


class AmortizedPosterior(nn.Module):
    """q(ln K | heads): whitening + summary network + conditional flow, with the data standardization inside."""

    def __init__(self, prior_mean: np.ndarray, prior_cov: np.ndarray, heads_mean: np.ndarray,
                 heads_sd: np.ndarray, sizes: FlowSizes):
        super().__init__()
        n_wells, n_steps = heads_mean.shape
        self.sizes = sizes
        self.whitening = PriorWhitening(prior_mean, prior_cov)
        self.register_buffer("heads_mean", torch.as_tensor(heads_mean, dtype=torch.float32))
        self.register_buffer("heads_sd", torch.as_tensor(heads_sd, dtype=torch.float32))
        self.summary = SummaryCNN(n_wells, n_steps, sizes.conv_channels, sizes.summary_dim)
        self.linear = LinearSummary(n_wells * n_steps, sizes.linear_modes) if sizes.linear_modes > 0 else None
        context = sizes.summary_dim + sizes.linear_modes
        dim = len(prior_mean)
        self.n_coupled = dim if sizes.coupling_dims is None else min(sizes.coupling_dims, dim)
        self.flow = ConditionalCouplingFlow(self.n_coupled, context, sizes)
        if sizes.rest not in ("prior", "diagonal", "linear"):
            raise ValueError(f"rest must be 'prior', 'diagonal' or 'linear', got {sizes.rest!r}")
        self.rest = (ConditionalDiagonalFlow(dim - self.n_coupled, context, sizes)
                     if self.n_coupled < dim and sizes.rest == "diagonal" else None)
        self.n_obs = n_wells * n_steps
        self.rest_linear = None
        if sizes.rest == "linear":
            self.set_linear_rest(self.new_linear_rest(sizes.rest_modes, sizes.rest_given))

    def new_linear_rest(self, modes: int, given: str) -> LinearGaussianRest | None:
        """An unfitted linear-Gaussian rest over the ``modes`` after the coupled ones (None for 0), given the
        "heads" or the "heads_and_coupled" modes."""
        if given not in ("heads", "heads_and_coupled"):
            raise ValueError(f"rest_given must be 'heads' or 'heads_and_coupled', got {given!r}")
        modes = min(modes, self.dim - self.n_coupled)
        coupled = self.n_coupled if given == "heads_and_coupled" else 0
        return LinearGaussianRest(self.n_obs, self.n_coupled + modes, modes, coupled) if modes > 0 else None

    def set_linear_rest(self, rest: LinearGaussianRest | None) -> None:
        """Use ``rest`` (from `new_linear_rest`; None: the prior) for the modes after the coupled ones; the sizes
        record it, so a saved model loads with it."""
        self.rest_linear = rest
        self.sizes = replace(self.sizes, rest_modes=0 if rest is None else rest.modes,
                             rest_given="heads" if rest is None else rest.given)

    @property
    def dim(self) -> int:
        return self.whitening.mean.numel()

    def standardize(self, heads: torch.Tensor) -> torch.Tensor:
        return (heads - self.heads_mean) / self.heads_sd

    def context(self, heads: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Summary of raw heads (m) (B, 13, 25); NaN allowed where ``mask`` is False."""
        c = self.summary(self.standardize(torch.nan_to_num(heads)), mask)
        return c if self.linear is None else torch.cat([c, self.linear(heads, mask)], dim=-1)

    @torch.no_grad()
    def set_linear_summary(self, jac: np.ndarray, sim0: np.ndarray, noise_sd: float, heads_train: torch.Tensor,
                           batch: int = 1000) -> None:
        """Give the linear summary its linearization and standardize it on the training heads (full records)."""
        self.linear.set_linearization(jac, sim0, noise_sd)
        mask = torch.ones(heads_train.shape[1:], dtype=torch.bool, device=heads_train.device)
        raw = torch.cat([self.linear.raw(h, mask.expand(len(h), *mask.shape))
                         for h in torch.split(heads_train, batch)])
        self.linear.shift.copy_(raw.mean(0))
        self.linear.scale.copy_(raw.std(0).clamp_min(1e-6))

    def log_prob_z(self, z: torch.Tensor, heads: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) ln q(z | heads) in whitened coordinates (the training objective is its negative mean)."""
        c = self.context(heads, mask)
        k = self.n_coupled
        lp = self.flow(c).log_prob(z[..., :k])
        if self.rest is not None:
            return lp + self.rest(c).log_prob(z[..., k:])
        if self.rest_linear is not None:
            m = k + self.rest_linear.modes
            lp = lp + self.rest_linear.log_prob(z[..., k:m], heads, mask, z[..., :k])
            k = m
        return lp + torch.distributions.Normal(0.0, 1.0).log_prob(z[..., k:]).sum(-1)  # the prior's own modes

    def log_prob_lnk(self, lnk: torch.Tensor, heads: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B,) ln q(ln K | heads), including the Jacobian of the whitening."""
        return self.log_prob_z(self.whitening(lnk), heads, mask) - self.whitening.half_logdet.to(lnk.dtype)

    @torch.no_grad()
    def sample_lnk(self, heads: torch.Tensor, mask: torch.Tensor, n: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, 706) posterior draws of ln K for ONE data set: heads and mask (13, 25)."""
        c = self.context(heads[None], mask[None])[0]
        eps = torch.randn((n, self.dim), generator=generator, device=c.device, dtype=c.dtype)
        k = self.n_coupled
        # zuko's flows map x -> base; sampling runs their inverse on base draws (one pass per coupling layer).
        parts = [self.flow(c).transform.inv(eps[:, :k])]
        if self.rest_linear is not None:
            m = k + self.rest_linear.modes
            parts.append(self.rest_linear.sample(eps[:, k:m], heads[None], mask[None], parts[0]))
            k = m
        parts.append(self.rest(c).transform.inv(eps[:, k:]) if self.rest is not None else eps[:, k:])
        return self.whitening.inverse(torch.cat(parts, dim=-1))

    def fit_linear_rest(self, jac: np.ndarray, sim0: np.ndarray, noise_sd: float, heads: torch.Tensor,
                        mask: torch.Tensor, z: torch.Tensor) -> None:
        """Fit the linear-Gaussian rest (``rest = "linear"``) on observed training heads and masks and their
        whitened coordinates z (N, 706), with the Jacobian at the prior mean."""
        self.rest_linear.summary.set_linearization(jac, sim0, noise_sd)
        k = self.n_coupled
        self.rest_linear.fit(heads, mask, z[:, k:k + self.rest_linear.modes], z[:, :k])


def n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())



def posterior_samples(model: AmortizedPosterior, heads: np.ndarray, mask: np.ndarray, n: int,
                      seed: int) -> np.ndarray:
    """(n, 706) float64 ln K draws for one data set (heads (13, 25) in m, NaN where ``mask`` is False), drawn in
    one batched pass of the flow."""
    device = model.heads_mean.device
    gen = torch.Generator(device=device).manual_seed(seed)
    h = torch.as_tensor(np.where(mask, heads, 0.0), dtype=torch.float32, device=device)
    m = torch.as_tensor(mask, device=device)
    return model.sample_lnk(h, m, n, generator=gen).double().cpu().numpy()


@torch.no_grad()
def log_prob_z(model: AmortizedPosterior, z: np.ndarray, heads: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n,) float64 ln q(z | heads) of whitened draws z (n, dim) for one data set (heads, mask (13, 25))."""
    device = model.heads_mean.device
    n = len(z)
    h = torch.as_tensor(np.where(mask, heads, 0.0), dtype=torch.float32, device=device).expand(n, *heads.shape)
    m = torch.as_tensor(mask, device=device).expand(n, *mask.shape)
    return model.log_prob_z(torch.as_tensor(z, dtype=torch.float32, device=device), h, m).double().cpu().numpy()
