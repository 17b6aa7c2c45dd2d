"""Percentile activation ranges: each tensor's range cut at the pooled percentiles of every value the calibration
images produced (TensorRT's percentile calibrator, NNCF's and AIMET's percentile range setting), no wider than
ai-edge-quantizer's moving average of the per-image ranges.

Where the MSE range (`tfyolo.quantization.mse_ranges`) prices each candidate's clipping and rounding together, the
percentile range fixes the share of values it clips: PERCENTILE = 99.99 leaves one value in 10,000 outside at each
end, about 4 values of a 20x20x96 map per image and 41 of an 80x80x64 one. It reads the same pooled histograms as
the MSE search, so a conversion costs the same second pass over the calibration images. Capped at the moving
average for the MSE range's reason (a few images' large values would otherwise set every image's resolution); the
prediction outputs keep the ends `choose_ranges` gives them."""

import numpy as np

from tfyolo.quantization.mse_ranges import pooled_histograms

# The percentile each end is cut at, from its side: 99.99 leaves 0.01% of the pooled values beyond each end, the
# usual choice of TensorRT's and NNCF's percentile calibration for 8-bit activations.
PERCENTILE = 99.99


def percentile_range(counts, minimum, maximum, widest, percentile=PERCENTILE):
    """(lo, hi) with lo <= 0 <= hi: the (100 - percentile)-th and percentile-th percentiles of the values
    histogrammed in `counts` (equal bins over [minimum, maximum]), each at a bin's outer edge (a bin holding the
    percentile is kept whole), neither end beyond `widest` (lo, hi) at its side."""
    cumulative = np.cumsum(counts, dtype=np.float64)
    tail = cumulative[-1] * (100.0 - percentile) / 100.0
    width = (maximum - minimum) / len(counts)
    first = int(np.searchsorted(cumulative, tail, side="right"))  # bins before `first` hold at most the tail
    last = int(np.searchsorted(cumulative, cumulative[-1] - tail, side="left"))
    low, high = minimum + first * width, minimum + (last + 1) * width
    return float(min(max(low, widest[0]), 0.0)), float(max(min(high, widest[1]), 0.0))


def percentile_ranges(fp32_content, images, calibration, percentile=PERCENTILE):
    """{tensor name: (lo, hi)}: the percentile range of every per-tensor summary of `calibration` over `images`, no
    wider than its moving average (`tfyolo.quantization.mse_ranges.pooled_histograms`)."""
    pooled = pooled_histograms(fp32_content, images, calibration)
    return {name: percentile_range(*histogram, widest, percentile) for name, (histogram, widest) in pooled.items()}
