import numpy as np
import pytest

from catalogs.gutenberg_richter import (
    b_value,
    bin_magnitudes,
    frequency_magnitude,
    mc_goodness_of_fit,
    mc_max_curvature,
)


def gr_magnitudes(n, b, mc, dm, rng):
    """Binned G-R magnitudes complete from ``mc``: continuous values start at mc - dm/2."""
    return bin_magnitudes(mc - dm / 2 + rng.exponential(1 / (b * np.log(10)), n), dm)


def incomplete_magnitudes(rng, b=1.0, mc=1.0, dm=0.1, n=200_000, width=0.15):
    """G-R from M -1 with detection probability exp((M - Mc)/width) below Mc, 1 above."""
    m = -1.0 + rng.exponential(1 / (b * np.log(10)), n)
    detected = rng.random(n) < np.minimum(1.0, np.exp((m - (mc - dm / 2)) / width))
    return bin_magnitudes(m[detected], dm)


def test_b_value_recovered_with_shi_bolt_sigma():
    rng = np.random.default_rng(0)
    m = gr_magnitudes(20_000, 1.0, 1.0, 0.1, rng)
    fit = b_value(m, mc=1.0, dm=0.1)
    assert fit.n == 20_000
    assert abs(fit.b - 1.0) < 0.05
    theoretical = 1.0 / np.sqrt(20_000)
    assert abs(fit.sigma - theoretical) / theoretical < 0.3
    assert fit.a == pytest.approx(np.log10(20_000) + fit.b * 1.0)


@pytest.mark.parametrize("b", [0.7, 1.3])
def test_b_value_other_slopes(b):
    m = gr_magnitudes(20_000, b, 2.0, 0.1, np.random.default_rng(1))
    assert abs(b_value(m, 2.0, 0.1).b - b) < 0.05


def test_binning_correction_matters():
    m = gr_magnitudes(20_000, 1.0, 1.0, 0.1, np.random.default_rng(2))
    uncorrected = np.log10(np.e) / (m.mean() - 1.0)
    assert abs(uncorrected - 1.0) > 0.1  # without the dm/2 term the estimate is badly biased
    assert abs(b_value(m, 1.0, 0.1).b - 1.0) < 0.05


def test_mc_max_curvature_finds_planted_completeness():
    m = incomplete_magnitudes(np.random.default_rng(3))
    assert abs(mc_max_curvature(m, 0.1) - 1.0) <= 0.1 + 1e-9
    assert mc_max_curvature(m, 0.1, correction=0.2) == pytest.approx(mc_max_curvature(m, 0.1) + 0.2)


def test_mc_goodness_of_fit_finds_planted_completeness():
    m = incomplete_magnitudes(np.random.default_rng(4))
    result = mc_goodness_of_fit(m, 0.1)
    assert result.method == "gof95"
    assert abs(result.mc - 1.0) <= 0.15
    assert result.table["R"].iloc[0] < 90  # far below Mc the fit is poor


def test_frequency_magnitude_counts():
    fmd = frequency_magnitude([0.0, 0.1, 0.1, 0.3, np.nan], dm=0.1)
    assert fmd["magnitude"].tolist() == [0.0, 0.1, 0.2, 0.3]
    assert fmd["incremental"].tolist() == [1, 2, 0, 1]
    assert fmd["cumulative"].tolist() == [4, 3, 1, 1]


def test_b_value_degenerate_inputs_give_nan():
    assert np.isnan(b_value([1.0], 1.0).b)
    assert np.isnan(b_value([1.0, 1.0, 1.0], 1.0).b)
