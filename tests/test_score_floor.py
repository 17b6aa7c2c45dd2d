"""The class logits' score floor: both quantizers start the class logits' int8 range at logit(min_score) instead of
the most negative logit calibration saw, and leave every other tensor's range as it was."""

import math

import numpy as np
import pytest

from tfyolo.errors import ConfigError
from tfyolo.quantization.recipe import Recipe

# A class-prediction bias this low makes calibration see logits near -30 at level 0 (every other logit of the tiny
# model stays within a few units of 0), so min-max ranges reach -30 and a floor at logit(0.01) = -4.595 binds.
DEEP_NEGATIVE_BIAS = -30.0
MIN_SCORE = 0.01


@pytest.fixture(scope="module")
def deep_negative_model():
    from tfyolo.models.model_config import ModelConfig
    from tfyolo.models.yolo_detector import build_yolo_detector

    model = build_yolo_detector(ModelConfig(num_classes=2, input_size=64))
    # An untrained detector's class predictions start from all-zero kernels, which ai-edge-quantizer cannot scale
    # (their int32 biases overflow and the conversion is refused): small kernels, as any trained model has.
    rng = np.random.default_rng(0)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights and weights[0].ndim == 4 and not weights[0].any():
            layer.set_weights([rng.normal(0, 0.01, weights[0].shape).astype("float32"), *weights[1:]])
    kernel, bias = model.get_layer("head0_cls_pred").get_weights()
    model.get_layer("head0_cls_pred").set_weights([kernel, np.full_like(bias, DEEP_NEGATIVE_BIAS)])
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 1, (8, 64, 64, 3)).astype("float32")


def quantized_ranges(content):
    """({tensor name: (lowest, highest) value its int8 grid represents} of every int8 tensor with one scale, the
    names of the class-logit tensors among them: the prediction convolutions, their reshapes, and the int8 output
    of their concatenation)."""
    from tfyolo.models.detect_head import CLASS_OUTPUT
    from tfyolo.tflite_runtime import read_graph, signature_outputs

    interpreter, ops, tensors = read_graph(content)
    ranges = {}
    for detail in tensors.values():
        scales = detail["quantization_parameters"]["scales"]
        if np.dtype(detail["dtype"]) == np.int8 and len(scales) == 1:
            scale, zero_point = float(scales[0]), int(detail["quantization_parameters"]["zero_points"][0])
            ranges[detail["name"]] = ((-128 - zero_point) * scale, (127 - zero_point) * scale)
    output = signature_outputs(interpreter)[CLASS_OUTPUT]
    # ai-edge-quantizer names the concatenation's int8 output after the output itself.
    classes = {name for name in ranges if "cls_pred" in name or "cls_flat" in name or name == CLASS_OUTPUT}
    classes |= {
        tensors[op["inputs"][0]]["name"] for op in ops if op["op_name"] == "DEQUANTIZE" and output in op["outputs"]
    }
    return ranges, classes


@pytest.mark.parametrize("quantizer", ["tflite_converter", "ai_edge_quantizer"])
def test_the_class_logits_range_starts_at_the_floor_and_nothing_else_moves(deep_negative_model, images, quantizer):
    from tfyolo.quantization.converter import convert

    model = deep_negative_model
    # ai-edge-quantizer quantizes the graph's input and outputs too: its recipes say int8 I/O.
    io_type = "int8" if quantizer == "ai_edge_quantizer" else "float32"
    plain_recipe = Recipe(name="int8", mode="int8", quantizer=quantizer, io_type=io_type)
    plain, plain_names = quantized_ranges(convert(model, plain_recipe, images))
    floored_recipe = Recipe(name="int8_floor", mode="int8", quantizer=quantizer, io_type=io_type, min_score=MIN_SCORE)
    floored, floored_names = quantized_ranges(convert(model, floored_recipe, images))
    floor = math.log(MIN_SCORE / (1 - MIN_SCORE))
    # Three levels' convolutions and reshapes and the concatenation (ai-edge-quantizer adds requantized copies of the
    # reshapes in front of the concatenation).
    assert len(plain_names) >= 7 and plain_names == floored_names
    plain_classes = {name: plain[name] for name in plain_names}
    floored_classes = {name: floored[name] for name in floored_names}
    # Without the floor the level-0 logits drag the range down near the bias; with it, a range that reached below
    # the floor starts at the floor within one step (the quantizer nudges the zero point onto the integer grid:
    # less than a step), and one that did not is left as it was.
    assert min(low for low, _ in plain_classes.values()) < DEEP_NEGATIVE_BIAS / 2
    for name, (low, high) in floored_classes.items():
        step = (high - low) / 255
        assert abs(low - max(plain_classes[name][0], floor)) <= step + 1e-6, (name, low, floor)
        assert high == pytest.approx(plain_classes[name][1], abs=2 * step + 1e-6), name
    others = set(plain) - set(plain_classes)
    assert others and all(floored[name] == pytest.approx(plain[name]) for name in others)


def test_the_floored_int8_reads_a_score_no_lower_than_min_score(deep_negative_model, images):
    from tfyolo.models.detect_head import CLASS_OUTPUT
    from tfyolo.quantization.converter import convert
    from tfyolo.tflite_runtime import SIGNATURE_KEY, make_interpreter

    model = deep_negative_model
    content = convert(model, Recipe(name="int8_floor", mode="int8", min_score=MIN_SCORE), images)
    runner = make_interpreter(model_content=content).get_signature_runner(SIGNATURE_KEY)
    logits = runner(images=images[:1])[CLASS_OUTPUT]
    expected = model(images[:1], training=False)[CLASS_OUTPUT].numpy()
    floor = math.log(MIN_SCORE / (1 - MIN_SCORE))
    step = (logits.max() - floor) / 255
    assert logits.min() >= floor - step
    # Level 0 (the first 64 anchors) sits at -30 in float: it reads as the floor, a score of min_score.
    assert expected[:, :64].max() < floor and np.allclose(logits[:, :64], logits[:, :64].min(), atol=step)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"mode": "fp16"}, "min_score sets the calibrated range of int8 class logits"),
        ({"mode": "int16x8", "io_type": "float32"}, "min_score sets the calibrated range"),
        ({"keep_float": ("head*",)}, "without keep_float or compress"),
    ],
)
def test_min_score_is_refused_where_it_cannot_apply(values, message):
    with pytest.raises(ConfigError, match=message):
        Recipe(**{"name": "r", "mode": "int8", "min_score": MIN_SCORE, **values})


@pytest.mark.parametrize("value", [0.0, 0.5, 1, "0.001", True])
def test_min_score_values_outside_a_low_score_are_refused(value):
    with pytest.raises(ConfigError, match="'min_score' must be a score above 0 and at most 0.01"):
        Recipe.from_dict({"name": "r", "mode": "int8", "min_score": value})
