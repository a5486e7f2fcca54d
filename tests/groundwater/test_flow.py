"""The amortized posterior: invertibility, exact log-density, masks, determinism, and a known posterior."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dataclasses import replace
from pathlib import Path

from phys_ml.stages.common.config import parse_config
from phys_ml.stages.common.params import load_params
from phys_ml.stages.groundwater.config import FlowConfig
from phys_ml.stages.groundwater.flow import AmortizedPosterior, FlowSizes, coupling_masks
from phys_ml.stages.groundwater.flow_training import NonFiniteLoss, TrainSettings, TrainState, train

# The committed defaults, shrunk per test: every value not overridden comes from params.yaml.
DEFAULTS = parse_config(FlowConfig, load_params(Path(__file__).resolve().parents[2] / "params.yaml"),
                        "groundwater.flow")


def sizes(**override) -> FlowSizes:
    return replace(DEFAULTS.sizes(), **{"mask_seed": 0, "linear_modes": 0, **override})


def settings(**override) -> TrainSettings:
    return replace(DEFAULTS.settings(0.01), **{"lr": 1e-3, "drop_well_prob": 0.0, **override})


SMALL = sizes(n_affine=2, n_spline=2, hidden=32, bins=6, coupling_dims=None, dropout=0.0, summary_dim=8,
              conv_channels=8)


def _model(dim: int = 4, wells: int = 2, steps: int = 3, sizes: FlowSizes = SMALL, seed: int = 0):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((dim, dim))
    cov = a @ a.T / dim + np.eye(dim)
    return AmortizedPosterior(rng.standard_normal(dim), cov, np.zeros((wells, steps)), np.ones((wells, steps)),
                              sizes)


def _randomize(model: torch.nn.Module, scale: float = 0.1) -> None:
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))


def test_flow_is_invertible_and_log_density_is_the_change_of_variables():
    model = _model().double().eval()
    _randomize(model)
    heads = torch.randn(1, 2, 3, dtype=torch.float64)
    mask = torch.ones(1, 2, 3, dtype=torch.bool)
    context = model.context(heads, mask)[0]
    dist = model.flow(context)
    x = 1.5 * torch.randn(5, 4, dtype=torch.float64)
    y = dist.transform(x)
    assert torch.allclose(dist.transform.inv(y), x, atol=1e-9)
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda v: dist.transform(v), xi)
        sign, logabsdet = torch.linalg.slogdet(jac)
        expected = torch.distributions.Normal(0.0, 1.0).log_prob(dist.transform(xi)).sum() + logabsdet
        assert sign > 0
        assert float(dist.log_prob(xi).detach()) == pytest.approx(float(expected.detach()), abs=1e-8)


def test_whitening_round_trip_and_density_of_an_untrained_flow_is_the_prior():
    model = _model().double().eval()
    lnk = torch.randn(7, 4, dtype=torch.float64)
    assert torch.allclose(model.whitening.inverse(model.whitening(lnk)), lnk, atol=1e-5)
    # The last layer of every coupling network starts at zero: the flow is the identity, q = prior.
    cov = (model.whitening.to_y @ model.whitening.to_y.T)
    prior = torch.distributions.MultivariateNormal(model.whitening.mean, covariance_matrix=cov)
    heads, mask = torch.randn(7, 2, 3, dtype=torch.float64), torch.ones(7, 2, 3, dtype=torch.bool)
    assert torch.allclose(model.log_prob_lnk(lnk, heads, mask), prior.log_prob(lnk), atol=1e-4)


def test_masked_out_values_do_not_change_the_summary():
    model = _model(wells=3, steps=25).eval()
    _randomize(model)
    heads = torch.randn(2, 3, 25)
    mask = torch.ones(2, 3, 25, dtype=torch.bool)
    mask[:, :, 20:] = False
    mask[1, 2, :] = False
    other = heads.clone()
    other[~mask] = torch.randn(int((~mask).sum())) * 100
    other[0, 0, 22] = float("nan")
    assert torch.equal(model.context(heads, mask), model.context(other, mask))
    assert not torch.equal(model.context(heads, mask), model.context(heads, torch.ones_like(mask)))


def test_coupling_masks_transform_every_coordinate():
    masks = coupling_masks(20, 4, seed=0)
    assert (~masks[0] | ~masks[1]).all() and (~masks[2] | ~masks[3]).all()
    assert all(m.sum() == 10 for m in masks)
    assert all(torch.equal(a, b) for a, b in zip(masks, coupling_masks(20, 4, seed=0)))


@pytest.mark.parametrize("rest", ["prior", "diagonal"])
def test_split_flow_couples_the_leading_modes_and_is_exact(rest):
    small = sizes(n_affine=2, n_spline=2, hidden=16, bins=4, coupling_dims=4, rest=rest, dropout=0.0,
                  summary_dim=8, conv_channels=8)
    model = _model(dim=7, sizes=small).double().eval()
    _randomize(model)
    assert model.n_coupled == 4 and (model.rest is None) == (rest == "prior")
    heads, mask = torch.randn(1, 2, 3, dtype=torch.float64), torch.ones(1, 2, 3, dtype=torch.bool)
    c = model.context(heads, mask)[0]
    z = torch.randn(3, 7, dtype=torch.float64)
    tail = (model.rest(c).log_prob(z[:, 4:]) if rest == "diagonal"
            else torch.distributions.Normal(0.0, 1.0).log_prob(z[:, 4:]).sum(-1))
    expected = model.flow(c).log_prob(z[:, :4]) + tail
    assert torch.allclose(model.log_prob_z(z, heads.expand(3, -1, -1), mask.expand(3, -1, -1)), expected)
    s = model.sample_lnk(heads[0], mask[0], 5, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 7) and torch.isfinite(s).all()
    if rest == "prior":  # the uncoupled modes are the prior's: their whitened draws are the latent draws
        eps = torch.randn((5, 7), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        assert torch.allclose(model.whitening(s)[:, 4:], eps[:, 4:], atol=1e-5)


def _linear_gaussian(n: int, rng: np.random.Generator):
    """y ~ N(0, I_3); d = G y + noise at 2 wells x 4 steps; the posterior is Gaussian and known."""
    g = rng.standard_normal((8, 3)) * 0.7
    sd = 0.5
    y = rng.standard_normal((n, 3))
    clean = (y @ g.T).reshape(n, 2, 4)
    return g, sd, y, clean


def test_recovers_a_known_linear_gaussian_posterior():
    rng = np.random.default_rng(0)
    g, sd, y, clean = _linear_gaussian(3000, rng)
    small = sizes(n_affine=2, n_spline=1, hidden=32, bins=4, coupling_dims=None, dropout=0.0, summary_dim=16,
                  conv_channels=16)
    torch.manual_seed(0)
    model = AmortizedPosterior(np.zeros(3), np.eye(3), np.zeros((2, 4)), np.full((2, 4), 1.5), small)
    train_settings = settings(epochs=30, batch_size=100, lr=1e-2, lr_decay=0.5, decay_epochs=10, patience=30,
                              noise_sd=sd, truncate_prob=0.0, drop_well_prob=0.0)
    f = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    z = model.whitening(f(y))  # the flow learns whitened parameters, as in the stage
    train(model, z[:2700], f(clean[:2700]), z[2700:], f(clean[2700:]), train_settings, seed=0)
    # Analytic posterior: cov = (I + G^T G / sd^2)^-1, mean = cov G^T d / sd^2.
    post_cov = np.linalg.inv(np.eye(3) + g.T @ g / sd**2)
    truth = rng.standard_normal((40, 3))
    d = truth @ g.T + sd * rng.standard_normal((40, 8))
    inside, errs_mean, errs_sd = [], [], []
    for t, di in zip(truth, d):
        mean = post_cov @ g.T @ di / sd**2
        h = torch.as_tensor(di.reshape(2, 4), dtype=torch.float32)
        s = model.sample_lnk(h, torch.ones(2, 4, dtype=torch.bool), 2000,
                             generator=torch.Generator().manual_seed(1)).double().numpy()
        errs_mean.append(np.abs(s.mean(0) - mean) / np.sqrt(np.diag(post_cov)))
        errs_sd.append(s.std(0) / np.sqrt(np.diag(post_cov)))
        lo, hi = np.quantile(s, [0.05, 0.95], axis=0)
        inside.append((t >= lo) & (t <= hi))
    # Posterior mean within 0.25 posterior sd on average, sd within 20 %, 90 % intervals cover 80-98 %.
    assert np.mean(errs_mean) < 0.25
    assert abs(np.mean(errs_sd) - 1.0) < 0.2
    assert 0.80 <= np.mean(inside) <= 0.98


def test_same_seed_same_samples_and_resume_equals_uninterrupted():
    rng = np.random.default_rng(3)
    _, sd, y, clean = _linear_gaussian(400, rng)
    f = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    train_settings = settings(epochs=4, batch_size=50, lr=1e-3, patience=10, noise_sd=sd, truncate_prob=0.5,
                              min_steps=2, drop_well_prob=0.1)

    def fresh():
        torch.manual_seed(0)
        return AmortizedPosterior(np.zeros(3), np.eye(3), np.zeros((2, 4)), np.ones((2, 4)), SMALL)

    a = fresh()
    train(a, f(y[:300]), f(clean[:300]), f(y[300:]), f(clean[300:]), train_settings, seed=5)
    b = fresh()
    saved: list[TrainState] = []

    def stop_after_two(state: TrainState) -> None:
        if state.epoch == 2:
            import copy

            saved.append(TrainState.from_dict(copy.deepcopy(state.to_dict())))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(b, f(y[:300]), f(clean[:300]), f(y[300:]), f(clean[300:]), train_settings, seed=5, on_epoch=stop_after_two)
    c = fresh()
    train(c, f(y[:300]), f(clean[:300]), f(y[300:]), f(clean[300:]), train_settings, seed=5, state=saved[0])
    for (k, va), vc in zip(a.state_dict().items(), c.state_dict().values()):
        assert torch.equal(va, vc), k
    h, m = f(clean[0]), torch.ones(2, 4, dtype=torch.bool)
    s1 = a.sample_lnk(h, m, 50, generator=torch.Generator().manual_seed(2))
    s2 = c.sample_lnk(h, m, 50, generator=torch.Generator().manual_seed(2))
    assert torch.equal(s1, s2)


def test_non_finite_loss_raises():
    rng = np.random.default_rng(4)
    _, sd, y, clean = _linear_gaussian(200, rng)
    f = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    y = y.copy()
    y[5, 0] = math.inf
    model = AmortizedPosterior(np.zeros(3), np.eye(3), np.zeros((2, 4)), np.ones((2, 4)), SMALL)
    with pytest.raises(NonFiniteLoss):
        train(model, f(y[:150]), f(clean[:150]), f(y[150:]), f(clean[150:]),
              settings(epochs=2, batch_size=150, noise_sd=sd, truncate_prob=0.0), seed=0)


def test_linear_summary_is_the_linearized_posterior_mean_with_missing_values():
    """The linear summary equals the exact posterior mean of the linearized model, also with masked values (which
    must not change it), and is standardized on the training heads."""
    from phys_ml.stages.groundwater.glm import linear_gaussian_posterior

    wells, steps, k = 2, 3, 3
    small = sizes(n_affine=1, n_spline=0, hidden=8, coupling_dims=None, dropout=0.0, summary_dim=4, conv_channels=4,
                  linear_modes=k)
    model = _model(dim=4, wells=wells, steps=steps, sizes=small)
    rng = np.random.default_rng(3)
    jac, sim0, sd = rng.normal(size=(wells * steps, 5)), rng.normal(size=wells * steps), 0.3
    train_heads = torch.as_tensor(rng.normal(size=(50, wells, steps)), dtype=torch.float32)
    model.set_linear_summary(jac, sim0, sd, train_heads)
    d = rng.normal(size=(wells, steps))
    mask = np.ones((wells, steps), bool)
    mask[1, 2] = mask[0, 0] = False
    w = np.where(mask.ravel(), 1 / sd, 0.0)
    expected, _ = linear_gaussian_posterior(jac[:, :k], sim0, np.zeros(k), d.ravel(), w)
    d_nan = np.where(mask, d, np.nan)
    raw = model.linear.raw(torch.as_tensor(d_nan, dtype=torch.float32)[None], torch.as_tensor(mask)[None])[0]
    assert np.allclose(raw.numpy(), expected, atol=1e-4)
    z = model.linear(train_heads, torch.ones(50, wells, steps, dtype=torch.bool))
    assert torch.allclose(z.mean(0), torch.zeros(k), atol=1e-4) and torch.allclose(z.std(0), torch.ones(k), atol=1e-4)
    assert model.context(torch.as_tensor(d_nan, dtype=torch.float32)[None],
                         torch.as_tensor(mask)[None]).shape == (1, 4 + k)


def test_linear_rest_recovers_the_posterior_of_a_linear_gaussian_problem():
    """rest = "linear": on G(z) = sim0 + J z (z ~ N(0, I)) the posterior of the modes after the coupled ones is
    Gaussian with a mean linear in the data, which its closed-form fit must recover (mean and covariance); before
    the fit those modes are the prior's, and q(z) is the flow's times that Gaussian times the prior's tail."""
    from phys_ml.stages.groundwater.glm import linear_gaussian_posterior

    wells, steps, dim, k, m, sd = 2, 4, 6, 2, 3, 0.5
    small = sizes(n_affine=1, n_spline=0, hidden=8, coupling_dims=k, rest="linear", rest_modes=m, dropout=0.0,
                  summary_dim=4, conv_channels=4)
    torch.manual_seed(0)
    model = AmortizedPosterior(np.zeros(dim), np.eye(dim), np.zeros((wells, steps)), np.ones((wells, steps)),
                               small).double().eval()
    rng = np.random.default_rng(4)
    jac, sim0 = rng.normal(size=(wells * steps, dim)), rng.normal(size=wells * steps)
    jac[:, k + m:] = 0.0  # the tail mode, left to the prior, does not move the heads: its posterior is the prior
    z = rng.standard_normal((40_000, dim))
    d = sim0 + z @ jac.T + sd * rng.standard_normal((len(z), wells * steps))
    heads, mask = torch.as_tensor(d.reshape(-1, wells, steps)), torch.ones(len(z), wells, steps, dtype=torch.bool)
    z_t = torch.as_tensor(z)
    one = (heads[:1], mask[:1])
    prior = torch.distributions.Normal(0.0, 1.0).log_prob(z_t[:3, k:]).sum(-1)
    c = model.context(*one)
    assert torch.allclose(model.log_prob_z(z_t[:3], heads[:3], mask[:3]),
                          model.flow(c).log_prob(z_t[:3, :k]) + prior)  # not fitted: the prior
    model.fit_linear_rest(jac, sim0, sd, heads, mask, z_t)
    mean, cov = linear_gaussian_posterior(jac, sim0, np.zeros(dim), d[0], np.full(wells * steps, 1 / sd))
    rest = model.rest_linear
    assert np.allclose(rest.mean(*one)[0].numpy(), mean[k:k + m], atol=0.03)
    assert np.allclose((rest.chol @ rest.chol.T).numpy(), cov[k:k + m, k:k + m], atol=0.03)
    tail = torch.distributions.Normal(0.0, 1.0).log_prob(z_t[:1, k + m:]).sum(-1)
    expected = model.flow(c).log_prob(z_t[:1, :k]) + rest.log_prob(z_t[:1, k:k + m], *one) + tail
    assert torch.allclose(model.log_prob_z(z_t[:1], *one), expected)
    draws = model.whitening(model.sample_lnk(heads[0], mask[0], 4000, generator=torch.Generator().manual_seed(0)))
    assert np.allclose(draws[:, k:k + m].mean(0).numpy(), mean[k:k + m], atol=0.05)


N_PAIRS = 160_000  # the fit's sampling error falls below the tolerance (at 40,000: 0.032 on one mean)


def test_linear_rest_given_the_coupled_modes_recovers_their_conditional_posterior():
    """rest_given "heads_and_coupled": on the linear-Gaussian problem q(z_r | heads, z_c) must recover the exact
    conditional posterior p(z_r | d, z_c) (mean linear in d and z_c, covariance the Schur complement); its draws
    are conditioned on the flow's own draws of z_c, and q(z) = q_flow(z_c) q_rest(z_r | z_c) p(tail)."""
    from phys_ml.stages.groundwater.glm import linear_gaussian_posterior

    wells, steps, dim, k, m, sd = 2, 4, 6, 2, 3, 0.5
    small = sizes(n_affine=1, n_spline=0, hidden=8, coupling_dims=k, rest="linear", rest_modes=m,
                  rest_given="heads_and_coupled", dropout=0.0, summary_dim=4, conv_channels=4)
    torch.manual_seed(0)
    model = AmortizedPosterior(np.zeros(dim), np.eye(dim), np.zeros((wells, steps)), np.ones((wells, steps)),
                               small).double().eval()
    assert model.rest_linear.coupled == k and model.sizes.rest_given == "heads_and_coupled"
    rng = np.random.default_rng(5)
    jac, sim0 = rng.normal(size=(wells * steps, dim)), rng.normal(size=wells * steps)
    jac[:, k + m:] = 0.0
    z = rng.standard_normal((N_PAIRS, dim))
    d = sim0 + z @ jac.T + sd * rng.standard_normal((len(z), wells * steps))
    heads, mask = torch.as_tensor(d.reshape(-1, wells, steps)), torch.ones(len(z), wells, steps, dtype=torch.bool)
    z_t = torch.as_tensor(z)
    model.fit_linear_rest(jac, sim0, sd, heads, mask, z_t)
    mean, cov = linear_gaussian_posterior(jac, sim0, np.zeros(dim), d[0], np.full(wells * steps, 1 / sd))
    c_idx, r_idx = slice(0, k), slice(k, k + m)
    gain = cov[r_idx, c_idx] @ np.linalg.inv(cov[c_idx, c_idx])
    z_c = np.array([[0.7, -1.2], [-0.3, 0.4]])
    expected_mean = mean[r_idx] + (z_c - mean[c_idx]) @ gain.T
    expected_cov = cov[r_idx, r_idx] - gain @ cov[c_idx, r_idx]
    rest = model.rest_linear
    one = (heads[:1].expand(2, -1, -1), mask[:1].expand(2, -1, -1))
    assert np.allclose(rest.mean(*one, torch.as_tensor(z_c)).numpy(), expected_mean, atol=0.03)
    assert np.allclose((rest.chol @ rest.chol.T).numpy(), expected_cov, atol=0.03)
    # the rest given the heads alone keeps the marginal covariance, larger than the conditional one
    assert np.trace(cov[r_idx, r_idx]) > np.trace(expected_cov) + 0.05
    tail = torch.distributions.Normal(0.0, 1.0).log_prob(z_t[:1, k + m:]).sum(-1)
    c = model.context(heads[:1], mask[:1])
    expected = (model.flow(c).log_prob(z_t[:1, :k]) + rest.log_prob(z_t[:1, k:k + m], heads[:1], mask[:1], z_t[:1, :k])
                + tail)
    assert torch.allclose(model.log_prob_z(z_t[:1], heads[:1], mask[:1]), expected)
    draws = model.whitening(model.sample_lnk(heads[0], mask[0], 2000, generator=torch.Generator().manual_seed(0)))
    resid = draws[:, r_idx] - rest.mean(heads[:1].expand(2000, -1, -1), mask[:1].expand(2000, -1, -1), draws[:, c_idx])
    assert np.allclose(np.cov(resid.numpy().T), expected_cov, atol=0.05)


def test_a_linear_rest_can_be_swapped_and_the_sizes_record_it():
    """train-flow fits the rest candidates after the flow and keeps one: the sizes (saved with the model) follow."""
    model = _model(dim=6, sizes=sizes(n_affine=1, n_spline=0, hidden=8, coupling_dims=2, rest="linear",
                                      rest_modes=0, dropout=0.0, summary_dim=4, conv_channels=4))
    assert model.rest_linear is None and model.sizes.rest_modes == 0
    model.set_linear_rest(model.new_linear_rest(10, "heads_and_coupled"))  # at most the 4 modes left
    assert model.rest_linear.modes == 4 and model.sizes.rest_modes == 4
    assert model.sizes.rest_given == "heads_and_coupled"
    with pytest.raises(ValueError, match="rest_given"):
        model.new_linear_rest(2, "coupled")
