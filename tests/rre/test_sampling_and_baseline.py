"""Sensors, collocation points and the sensor-interpolation baseline."""

import os
import subprocess
import sys

import numpy as np
import pytest

from phys_ml.stages.common.errors import UserError
from phys_ml.stages.rre.evaluation import relative_l2, sensor_interpolation
from phys_ml.stages.rre.sampling import collocation_rows, noisy, sensor_rows


def test_sensors_are_15_columns_by_5_depths_by_30_times():
    shape = (30, 20, 20, 10)
    rows = sensor_rows(shape, 15, [0, 2, 4, 6, 8], np.random.default_rng(0))
    assert rows.size == 2250 and np.unique(rows).size == 2250
    t, ix, iy, iz = np.unravel_index(rows, shape)
    assert np.unique(ix * 20 + iy).size == 15 and set(iz) == {0, 2, 4, 6, 8} and np.unique(t).size == 30
    again = sensor_rows(shape, 15, [0, 2, 4, 6, 8], np.random.default_rng(0))
    np.testing.assert_array_equal(rows, again)  # seeded


def test_noise_and_collocation():
    rng = np.random.default_rng(1)
    eps = noisy(np.zeros(20000), 0.005, rng)
    assert np.std(eps) == pytest.approx(0.005, rel=0.03)
    rows = collocation_rows(120_000, 10_000, rng)
    assert rows.size == 10_000 and np.unique(rows).size == 10_000 and rows.max() < 120_000
    with pytest.raises(UserError, match="collocation"):
        collocation_rows(10, 11, rng)
    with pytest.raises(UserError, match="layers"):
        sensor_rows((2, 3, 3, 4), 2, [0, 5], rng)


def test_baseline_is_exact_for_a_field_linear_in_depth():
    shape = (3, 4, 4, 6)
    t, x, y, z = np.meshgrid(np.arange(1.0, 4.0), np.arange(4.0), np.arange(4.0), np.arange(6.0) + 0.5, indexing="ij")
    coords = np.stack([a.ravel() for a in (x, y, z, t)], axis=1)
    psi = -(2.0 + 3.0 * coords[:, 2] + coords[:, 3])  # uniform in x, y
    rows = sensor_rows(shape, 3, [0, 5], np.random.default_rng(2))
    base = sensor_interpolation(coords, coords[rows], psi[rows])
    assert relative_l2(base, psi) < 1e-12


def test_relative_l2_does_not_depend_on_the_thread_count():
    """The solver statistics in solver.json are a DVC output: the same data must give the same bytes whether BLAS
    runs on one thread or on every core (a threaded BLAS dot splits the sum differently)."""
    import subprocess
    import sys
    code = ("import numpy as np; from phys_ml.stages.rre.evaluation import relative_l2; "
            "r = np.random.default_rng(0); t = r.normal(size=2_000_000); "
            "print(repr(relative_l2(t + 1e-3 * r.normal(size=t.size), t)))")
    values = set()
    for threads in ("1", "2", "4"):
        env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
        env.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
        values.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                  check=True).stdout)
    assert len(values) == 1, values
