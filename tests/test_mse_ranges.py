"""MSE-optimal activation ranges (`range_statistic: outputs_mse`): the range search against published optimal
clipping values and against values actually rounded, and the ranges it chooses in the int8 file (with the
percentile ranges, which read the same pooled histograms)."""

import numpy as np
import pytest

from tfyolo.quantization.mse_ranges import HISTOGRAM_BINS, mse_range
from tfyolo.quantization.recipe import Recipe


def histogram(values):
    counts, edges = np.histogram(values, HISTOGRAM_BINS)
    return counts, edges[0], edges[-1]


def searched(values, widest=None):
    """The MSE-optimal range of `values`, searched up to `widest` (default: their extremes)."""
    counts, low, high = histogram(values)
    return mse_range(counts, low, high, widest or (low, high))


@pytest.mark.parametrize(
    "draw, optimal_clip, tolerance",
    [
        # Banner et al. 2019 (ACIQ), table 1: the clipping value of least mean squared error at 8 bits is 3.92 sigma
        # for a Gaussian and 9.89 b for a Laplace(0, b).
        (lambda rng: rng.normal(0.0, 1.0, 1_000_000), 3.92, 0.1),
        (lambda rng: rng.laplace(0.0, 1.0, 1_000_000), 9.89, 0.4),
    ],
    ids=["gaussian", "laplace"],
)
def test_symmetric_distributions_are_clipped_where_the_published_analysis_puts_the_optimum(
    draw, optimal_clip, tolerance
):
    values = draw(np.random.default_rng(0))
    low, high = searched(values)
    assert -low == pytest.approx(optimal_clip, abs=tolerance)
    assert high == pytest.approx(optimal_clip, abs=tolerance)
    # Far inside the extremes (about 4.9 sigma and 13 b for a million draws): the search did clip.
    assert high < 0.9 * values.max()


def simulated_error(values, low, high):
    """Mean squared error of the values fake-quantized to 256 levels over [low, high], as an int8 kernel rounds
    them: scale and zero point, round half away, clamp."""
    scale = (high - low) / 255
    zero_point = np.round(-128 - low / scale)
    codes = np.clip(np.round(values / scale) + zero_point, -128, 127)
    return float(np.mean(((codes - zero_point) * scale - values) ** 2))


def test_the_chosen_range_has_the_least_error_when_the_values_are_actually_rounded():
    """A SiLU of Laplace-distributed inputs with a thin tail of large values, as inside a YOLO (values crowd against
    SiLU's floor at -0.278; 0.5% reach 10-45). Oracle: each candidate range's error measured by rounding the values
    themselves on the grid ai-edge-quantizer writes (zero point rounded), not from the histogram. The chosen range
    beats, within the histogram's 0.5%, the extremes, the top halved and both ends moved by 10% either way."""
    rng = np.random.default_rng(1)
    x = rng.laplace(0.0, 1.0, 400_000)
    values = np.concatenate([x / (1 + np.exp(-x)), rng.exponential(6.0, 2_000)])
    low, high = searched(values)
    chosen = simulated_error(values, low, high)
    extremes = (values.min(), values.max())
    others = [extremes, (extremes[0], extremes[1] / 2)]
    others += [(low * a, high * b) for a in (0.9, 1.0, 1.1) for b in (0.9, 1.0, 1.1) if (a, b) != (1.0, 1.0)]
    for other in others:
        assert chosen <= simulated_error(values, *other) * 1.005, other
    assert chosen < 0.8 * simulated_error(values, *extremes)
    # Values crowd against SiLU's floor: cutting it by even a few percent clips many, so the low end stays there.
    assert low == pytest.approx(values.min(), rel=0.01)


def test_a_one_sided_tensor_keeps_zero_in_its_range():
    """Values all above zero (a sigmoid's output): the range starts at zero, as an int8 grid must hold zero."""
    values = np.random.default_rng(2).uniform(0.2, 0.9, 100_000)
    low, high = searched(values)
    assert low == 0.0 and 0.85 < high <= values.max() + 1e-9


@pytest.mark.parametrize("statistic", ["outputs_mse", "outputs_percentile"])
def test_the_pooled_statistics_put_their_ranges_inside_the_network_and_the_extremes_on_the_outputs(
    statistic, tiny_float_run, tiny_synthetic
):
    """The tiny detector quantized with `statistic` and with `outputs_min_max` on the same images. Inside the
    network each convolution's output (SiLU's LOGISTIC and MUL read it, which put no constraint on its grid; a
    SPLIT or a CONCATENATION ties a tensor's grid to others') has an int8 step equal to the span / 255 of the range
    the statistic's own function computes on the same calibration (`mse_ranges`, `percentile_ranges`), and to the
    moving average's span / 255 in the other file.
    The prediction outputs keep the same top under both statistics (their extreme), and the box outputs, which keep
    both extremes, the same step."""
    from ai_edge_quantizer import qtyping, quantizer
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from tfyolo.data.calibration_images import load_calibration_images
    from tfyolo.models.prediction_outputs import outputs_with_extreme
    from tfyolo.quantization.aeq import INPUT_NAME, calibrate, quantize
    from tfyolo.quantization.head_tensors import prediction_tensor_names
    from tfyolo.quantization.isolated import convert_isolated
    from tfyolo.quantization.mse_ranges import mse_ranges
    from tfyolo.quantization.percentile_ranges import percentile_ranges
    from tfyolo.tflite_runtime import builtin_code, make_interpreter

    images, _ = load_calibration_images(tiny_synthetic, 64, 16, 0, [], False)
    # Pixel noise first: its wide ranges weigh 0.95^16 = 0.46 of the moving average, its values 1/17 of the pooled
    # histogram, so the search has tails to cut inside the average.
    noise = np.random.default_rng(0).uniform(0, 1, images.shape[1:]).astype(np.float32)
    images = np.concatenate([noise[None], images])
    fp32 = convert_isolated(tiny_float_run, Recipe(name="fp32", mode="fp32"), None)

    def steps(statistic):
        recipe = Recipe(
            name="int8", mode="int8", io_type="int8", quantizer="ai_edge_quantizer", range_statistic=statistic
        )
        interpreter = make_interpreter(model_content=quantize(fp32, recipe, images), xnnpack=False)
        return {d["name"]: d["quantization"] for d in interpreter.get_tensor_details() if d["quantization"][0]}

    def span(low, high):
        return (max(float(np.max(high)), 0.0) - min(float(np.min(low)), 0.0)) / 255

    searched_grid, default_grid = steps(statistic), steps("outputs_min_max")
    searched = {name: scale for name, (scale, _) in searched_grid.items()}
    default = {name: scale for name, (scale, _) in default_grid.items()}
    engine = quantizer.Quantizer(fp32)
    engine.add_static_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8)
    calibration = calibrate(fp32, engine, [{INPUT_NAME: image[None]} for image in images])
    expected = {"outputs_mse": mse_ranges, "outputs_percentile": percentile_ranges}[statistic](
        fp32, images, calibration
    )
    outputs = set().union(*prediction_tensor_names(fp32).values())
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(fp32))
    graph = model.subgraphs[0]
    codes = [builtin_code(code) for code in model.operatorCodes]
    convolution = {schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D}
    inside = {
        graph.tensors[op.outputs[0]].name.decode() for op in graph.operators if codes[op.opcodeIndex] in convolution
    } - outputs
    assert len(inside) >= 10
    for name in inside:
        assert searched[name] == pytest.approx(span(*expected[name]), rel=1e-4), name
        assert default[name] == pytest.approx(span(calibration[name]["min"], calibration[name]["max"]), rel=1e-4)
    # The two statistics differ somewhere inside (else the test could not tell which one the file holds): capped
    # at the moving average, the pooled statistic tightens SiLU outputs whose tails few values reach.
    shared = (searched.keys() & default.keys()) - outputs
    assert sum(searched[name] < default[name] * 0.98 for name in shared) >= 3
    assert all(searched[name] <= default[name] * 1.02 for name in inside)
    predictions = prediction_tensor_names(fp32)
    both_ends = set().union(*(predictions.get(output, ()) for output in outputs_with_extreme("min")))
    assert both_ends & searched.keys() and outputs - both_ends
    for name in outputs & searched.keys():
        (scale, zero_point), (default_scale, default_zero_point) = searched_grid[name], default_grid[name]
        # The zero point is rounded to an integer: a top is its extreme within half a step.
        top, default_top = (127 - zero_point) * scale, (127 - default_zero_point) * default_scale
        assert top == pytest.approx(default_top, abs=(scale + default_scale) / 2), name
        if name in both_ends:
            assert scale == pytest.approx(default_scale, rel=1e-6), name


def test_the_search_never_widens_a_range_beyond_the_moving_average():
    """Gaussian values with 0.1% at 40 sigma, as when a few calibration images reach far beyond the rest: searched
    up to the extremes, the pooled squared error pays to widen the range to cover them (clipping 400 values by 36
    sigma costs more than rounding a million on a 10x coarser grid); capped at the moving average's [-5, 5] it
    stays inside it, the top at the cap, where the outliers pull it, the low end near the Gaussian's own optimum
    (one step serves both ends, so not at its symmetric 3.92 sigma)."""
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0.0, 1.0, 400_000), np.full(400, 40.0)])
    assert searched(values)[1] > 30
    low, high = searched(values, widest=(-5.0, 5.0))
    assert -5.0 <= low and high <= 5.0
    assert 3.5 < -low <= 5.0 and high == pytest.approx(5.0, abs=0.05)
