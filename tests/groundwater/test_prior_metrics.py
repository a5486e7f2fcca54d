"""The Gaussian-process prior and the inversion metrics."""

import numpy as np
import pytest

from phys_ml.stages.groundwater import freyberg, metrics
from phys_ml.stages.groundwater.prior import GaussianPrior, exponential_covariance


def test_prior_sample_covariance_matches_the_exponential_model():
    pts = freyberg.active_centres()
    prior = GaussianPrior.exponential(pts, mean=1.5, variance=1.0, length=1000.0)
    y = prior.sample(4000, np.random.default_rng(0))
    assert y.shape == (4000, 706)
    assert abs(y.mean() - 1.5) < 0.05
    cov = np.cov(y.T)
    assert abs(np.diag(cov).mean() - 1.0) < 0.03
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    for lag in (250.0, 500.0, 1000.0, 2000.0):
        pairs = np.isclose(dist, lag)
        assert abs(cov[pairs].mean() - np.exp(-lag / 1000.0)) < 0.03, lag
    assert np.abs(cov - prior.cov).max() < 0.15


def test_prior_is_exact_and_reproducible():
    pts = freyberg.active_centres()[:50]
    prior = GaussianPrior.exponential(pts, 0.0, 2.0, 500.0)
    assert np.allclose(prior.chol @ prior.chol.T, exponential_covariance(pts, 2.0, 500.0), atol=1e-8)
    a = prior.sample(3, np.random.default_rng(5))
    b = prior.sample(3, np.random.default_rng(5))
    assert np.array_equal(a, b)
    with pytest.raises(ValueError):
        exponential_covariance(pts, 1.0, 0.0)


def test_metrics_on_known_cases():
    truth = np.array([1.0, 2.0, -4.0])
    assert metrics.average_relative_error(truth, truth) == 0.0
    assert metrics.relative_error(truth * 1.1, truth) == pytest.approx(0.1)
    assert metrics.average_relative_error(truth + np.array([0.1, 0.2, 0.4]), truth) == pytest.approx(0.1)
    # LPP of a unit Gaussian at its mean: -n/2 ln(2 pi).
    assert metrics.log_predictive_probability(np.zeros(4), np.ones(4), np.zeros(4)) == pytest.approx(
        -2 * np.log(2 * np.pi))
    r2 = metrics.r2_per_parameter(np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]),
                                  np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))
    assert r2[0] == pytest.approx(1.0) and r2[1] < 0


def test_calibrated_posterior_has_95_percent_coverage():
    rng = np.random.default_rng(1)
    n = 4000
    mu, sd = rng.normal(size=n), rng.uniform(0.5, 2.0, size=n)
    truth = mu + sd * rng.normal(size=n)
    samples = mu + sd * rng.normal(size=(2000, n))
    assert metrics.coverage(samples, truth) == pytest.approx(0.95, abs=0.015)
    assert metrics.coverage(samples, truth, gaussian=True) == pytest.approx(0.95, abs=0.015)
    s = metrics.summarize(samples, truth)
    assert set(s) == {"average_relative_error", "relative_error", "lpp", "coverage95"}
