"""Percentile activation ranges (`range_statistic: outputs_percentile`): the ends against numpy's percentiles of the
same values, the share they clip, the moving average as a cap, and where choose_ranges takes them."""

import numpy as np
import pytest

from tfyolo.quantization.mse_ranges import HISTOGRAM_BINS
from tfyolo.quantization.percentile_ranges import PERCENTILE, percentile_range


def histogram(values):
    counts, edges = np.histogram(values, HISTOGRAM_BINS)
    return counts, edges[0], edges[-1]


@pytest.mark.parametrize(
    "draw", [lambda rng: rng.normal(0.0, 1.0, 1_000_000), lambda rng: rng.laplace(1.0, 2.0, 1_000_000)]
)
def test_the_ends_are_numpys_percentiles_to_within_a_bin_and_clip_at_most_the_tail(draw):
    values = draw(np.random.default_rng(0))
    counts, low, high = histogram(values)
    width = (high - low) / HISTOGRAM_BINS
    lo, hi = percentile_range(counts, low, high, (low, high))
    expected_lo, expected_hi = np.percentile(values, [100 - PERCENTILE, PERCENTILE])
    # A bin holding the percentile is kept whole: each end lies on the quantile's outer side, within one bin.
    assert expected_lo - width - 1e-9 <= lo <= expected_lo + 1e-9
    assert expected_hi - 1e-9 <= hi <= expected_hi + width + 1e-9
    tail = len(values) * (100 - PERCENTILE) / 100
    assert (values < lo).sum() <= tail and (values > hi).sum() <= tail
    # Tight: one bin further in clips more than the tail at each end.
    assert (values < lo + width).sum() > tail and (values > hi - width).sum() > tail
    # Far inside the extremes of a million draws (about 4.9 sigma for the Gaussian): the tails were cut.
    assert hi < 0.9 * values.max()


def test_the_range_stays_inside_the_moving_average_and_holds_zero():
    values = np.random.default_rng(1).uniform(2.0, 6.0, 100_000)
    counts, low, high = histogram(values)
    # All values positive: the low end is zero (int8 must hold zero exactly), the top the percentile.
    lo, hi = percentile_range(counts, low, high, (low, high))
    assert lo == 0.0 and hi == pytest.approx(np.percentile(values, PERCENTILE), abs=(high - low) / HISTOGRAM_BINS)
    # A moving average narrower than the percentile caps it.
    assert percentile_range(counts, low, high, (0.0, 5.0)) == (0.0, 5.0)


def test_choose_ranges_takes_the_percentiles_inside_and_the_extremes_on_the_prediction_outputs():
    from tfyolo.quantization.aeq import choose_ranges

    def summary(percentiles):
        return {
            "min": np.array([-1.0]),
            "max": np.array([3.0]),
            "extreme_min": np.array([-2.0]),
            "extreme_max": np.array([9.0]),
            "pooled_min": percentiles[0],
            "pooled_max": percentiles[1],
        }

    calibration = {"inner": summary((-0.5, 2.5)), "boxes": summary((-0.5, 2.5))}
    chosen = choose_ranges(calibration, "outputs_percentile", {"box_distribution": {"boxes"}})

    def span(name):
        return float(np.ravel(chosen[name]["min"])[0]), float(np.ravel(chosen[name]["max"])[0])

    assert span("inner") == (-0.5, 2.5)
    assert span("boxes") == (-2.0, 9.0)
