"""MSE-optimal activation ranges: for each tensor, the int8 range that minimizes the expected squared error of
quantizing the values the calibration images produced, clipping and rounding together (the "MSE" range setting of
TensorRT's and NNCF's calibrators, AIMET's "TF-enhanced"), searched no wider than ai-edge-quantizer's moving average
of the per-image ranges.

A wide range rounds every value coarsely; a narrow one clips the tail. On 256 levels over [lo, hi] a value inside
is off by step^2 / 12 on average (step = (hi - lo) / 255, rounding error uniform over a step) and a value outside by
its distance to the end it is clipped to. The error is computed from a histogram of every calibration value of the
tensor (pooled over images, over the extremes' span), for every pair of candidate ends, and the cheapest pair wins.

Why no wider than the moving average: the pooled error counts every value of every image, so a few images' large
activations can buy a range wider than any typical image needs, at every image's resolution. Searched up to the
extremes, the ranges widened that way cost the PennFudan YOLO26n one-to-one head 3.4 points of mAP50-95 (and 5.5
searched only between the average and the extremes), where the moving average lost none; capped at the average,
the search only tightens where the pooled values say it pays (docs/quantization.md).

Only the ranges inside the network are chosen so; the prediction outputs keep the ends `choose_ranges` gives them
(a clipped class logit or box bin is a wrong answer, not a small error)."""

import warnings

import numpy as np

# Histogram bins over a tensor's extremes: a 256-level grid on the full span is 8 bins a step, so the rounding and
# clipping errors of any candidate are resolved well below one step.
HISTOGRAM_BINS = 2048
# Candidate ends, as fractions of the extreme at that end: 1 keeps the extreme, 0.01 cuts 99% of that side.
END_FRACTIONS = np.linspace(0.01, 1.0, 100)
LEVELS = 255


def tensor_histograms(fp32_content, images, extremes):
    """{tensor name: (counts, minimum, maximum)}: the histogram (`HISTOGRAM_BINS` bins over [minimum, maximum]) of
    every value the fp32 model `fp32_content` computes on `images` for each tensor named in `extremes` ({name:
    (minimum, maximum)}, the calibration's extremes). The model's input is left out: its range is the pixels' own,
    which an int8-input artifact's user feeds on that grid."""
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():  # LiteRT warns that keeping every tensor is for debugging: here it is the point
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(model_content=fp32_content, experimental_preserve_all_tensors=True, num_threads=2)
    interpreter.allocate_tensors()
    tensors = {detail["name"]: detail["index"] for detail in interpreter.get_tensor_details()}
    feed = interpreter.get_input_details()[0]
    spans = {
        name: bounds
        for name, bounds in extremes.items()
        if name in tensors and name != feed["name"] and bounds[1] > bounds[0]
    }
    counts = {name: np.zeros(HISTOGRAM_BINS, np.int64) for name in spans}
    for image in images:
        interpreter.set_tensor(feed["index"], image[None].astype(np.float32))
        interpreter.invoke()
        for name, (low, high) in spans.items():
            values = interpreter.get_tensor(tensors[name]).ravel()
            bins = ((values - low) * (HISTOGRAM_BINS / (high - low))).astype(np.int64)
            counts[name] += np.bincount(np.clip(bins, 0, HISTOGRAM_BINS - 1), minlength=HISTOGRAM_BINS)
    return {name: (counts[name], low, high) for name, (low, high) in spans.items()}


def _clipping_errors(counts, centres):
    """Two functions of an array of ends: the summed squared distance to the end of the histogram's values beyond
    it, and how many values that is; one for the values above an end, one for those below. Prefix sums of count,
    count x value and count x value^2 make each end O(1): sum over clipped c (x - e)^2 = S2 - 2 e S1 + e^2 S0."""
    moments = np.stack([counts, counts * centres, counts * centres**2])
    before = np.concatenate([np.zeros((3, 1)), np.cumsum(moments, axis=1)], axis=1)  # bins left of index i
    after = moments.sum(axis=1, keepdims=True) - before  # bins from index i on

    def above(ends):
        s0, s1, s2 = after[:, np.searchsorted(centres, ends, side="right")]
        return s2 - 2 * ends * s1 + ends**2 * s0, s0

    def below(ends):
        s0, s1, s2 = before[:, np.searchsorted(centres, ends, side="left")]
        return s2 - 2 * ends * s1 + ends**2 * s0, s0

    return above, below


def mse_range(counts, minimum, maximum, widest):
    """(lo, hi) with lo <= 0 <= hi that minimizes the expected squared error of quantizing the values histogrammed
    in `counts` (equal bins over [minimum, maximum]) to 256 levels, each end a fraction `END_FRACTIONS` of the end
    of `widest` (lo, hi) at its side (the whole of it, zero included, at fraction 1).

    The error is the grid's that ai-edge-quantizer writes for [lo, hi]: scale (hi - lo) / 255 and the zero point
    rounded to an integer, which moves both ends by up to half a step. Where a tensor's values crowd against one end
    (SiLU's floor at -0.278 holds a large share of every YOLO activation) half a step there matters."""
    counts = counts.astype(np.float64)
    centres = minimum + (np.arange(len(counts)) + 0.5) * (maximum - minimum) / len(counts)
    lows = min(widest[0], 0.0) * END_FRACTIONS[:, None]
    highs = max(widest[1], 0.0) * END_FRACTIONS[None, :]
    scale = np.maximum(highs - lows, 1e-9) / LEVELS
    zero_point = np.rint(-128 - lows / scale)
    low_end, high_end = (-128 - zero_point) * scale, (127 - zero_point) * scale
    above, below = _clipping_errors(counts, centres)
    (above_error, above_count), (below_error, below_count) = above(high_end), below(low_end)
    error = above_error + below_error + (counts.sum() - above_count - below_count) * scale**2 / 12
    low_index, high_index = np.unravel_index(np.argmin(error), error.shape)
    return float(lows[low_index, 0]), float(highs[0, high_index])


def pooled_histograms(fp32_content, images, calibration):
    """{tensor name: ((counts, minimum, maximum), (lo, hi))}: for every per-tensor summary of `calibration`
    (ai-edge-quantizer's moving average in "min" / "max", tfyolo's "extreme_min" / "extreme_max"), the histogram of
    its values over `images` (`tensor_histograms`, over its extremes) and its moving average, which a range chosen
    from the histogram stays inside."""
    per_tensor = {name: summary for name, summary in calibration.items() if np.size(summary["min"]) == 1}
    extremes = {
        name: (
            float(np.min(summary.get("extreme_min", summary["min"]))),
            float(np.max(summary.get("extreme_max", summary["max"]))),
        )
        for name, summary in per_tensor.items()
    }
    return {
        name: (histogram, (float(np.min(per_tensor[name]["min"])), float(np.max(per_tensor[name]["max"]))))
        for name, histogram in tensor_histograms(fp32_content, images, extremes).items()
    }


def mse_ranges(fp32_content, images, calibration):
    """{tensor name: (lo, hi)}: the MSE-optimal range of every per-tensor summary of `calibration` over `images`,
    no wider than its moving average (`pooled_histograms`)."""
    pooled = pooled_histograms(fp32_content, images, calibration)
    return {name: mse_range(*histogram, widest) for name, (histogram, widest) in pooled.items()}
