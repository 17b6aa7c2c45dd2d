"""Mixed int8 / int16 activations through ai-edge-quantizer: the chosen blocks and only they run 16-bit, every op
stays integer, and the artifact goes through the same checks and evaluation as any other."""

import re

import numpy as np
import pytest

from tfyolo.errors import ConfigError
from tfyolo.quantization.aeq import block_pattern, layer_regex
from tfyolo.quantization.recipe import Recipe

BLOCK = "stage1_cv1a"


def test_layer_patterns_select_whole_blocks_and_nothing_else():
    pattern = re.compile(layer_regex([block_pattern(f"{BLOCK}_conv"), "head_box0_pred"]))
    selected = [
        f"m/{BLOCK}_bn/FusedBatchNormV3;m/{BLOCK}_conv/Conv2D1",  # a fused conv names the BN and the conv
        f"m/{BLOCK}_act/Sigmoid",
        f"m/{BLOCK}_act/mul_1",
        "m/head_box0_pred/BiasAdd",
    ]
    left = ["m/stage1_cv1b_act/mul_1", f"m/x{BLOCK}_act/mul_1", "m/head_box0_pred_other/BiasAdd", BLOCK]
    assert [bool(pattern.match(name)) for name in selected + left] == [True] * 4 + [False] * 4


@pytest.mark.parametrize(
    "values, message",
    [
        ({"int16_layers": ("a_*",)}, "int16_layers needs quantizer: ai_edge_quantizer"),
        ({"quantizer": "ai_edge_quantizer", "mode": "int16x8", "io_type": "int16"}, "it takes mode int8, io_type int8"),
        ({"quantizer": "ai_edge_quantizer"}, "it takes mode int8, io_type int8 .*io_type 'float32'"),
        ({"quantizer": "xla"}, "quantizer must be one of"),
    ],
)
def test_mixed_recipes_are_refused_where_they_cannot_hold(values, message):
    with pytest.raises(ConfigError, match=message):
        Recipe(**{"name": "r", "mode": "int8", **values})


def activation_types(content):
    """{tensor name: dtype name} of every op output of a TFLite model, but the requantizing QUANTIZE ops (read
    without XNNPACK, which would fold the ops it runs into DELEGATE nodes)."""
    from tfyolo.tflite_runtime import make_interpreter

    interpreter = make_interpreter(model_content=content, xnnpack=False)
    details = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    return {
        details[index]["name"]: np.dtype(details[index]["dtype"]).name
        for op in interpreter._get_ops_details()
        if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE")
        for index in op["outputs"]
    }


@pytest.fixture(scope="module")
def calibration(tiny_synthetic):
    from tfyolo.data.calibration_images import load_calibration_images

    images, _ = load_calibration_images(tiny_synthetic, 64, 16, 0, [], False)
    return images


def test_the_chosen_block_runs_16_bit_and_the_rest_int8(tiny_float_run, calibration):
    from tfyolo.quantization.artifact import finalize_artifact
    from tfyolo.quantization.isolated import convert_isolated

    recipe = Recipe(
        name="int8_int16act1_int8io",
        mode="int8",
        io_type="int8",
        quantizer="ai_edge_quantizer",
        int16_layers=(block_pattern(f"{BLOCK}_conv"),),
    )
    content = convert_isolated(tiny_float_run, recipe, calibration)
    content, inspection = finalize_artifact(content, recipe, {"names": ["a", "b"], "reg_max": 16})
    assert inspection["full_integer"] and inspection["float_compute_ops"] == []
    types = activation_types(content)
    in_block = {name: dtype for name, dtype in types.items() if f"/{BLOCK}_" in name}
    outside = {name: dtype for name, dtype in types.items() if f"/{BLOCK}_" not in name}
    # conv (fused with its BN), sigmoid, mul: SiLU's two ops and the conv.
    assert len(in_block) == 3 and set(in_block.values()) == {"int16"}, in_block
    assert set(outside.values()) == {"int8"}, sorted(set(outside.values()))


@pytest.mark.large
def test_patterns_that_match_no_layer_are_an_error(tiny_float_run, calibration):
    from tfyolo.quantization.isolated import ConversionError, convert_isolated

    recipe = Recipe(name="typo", mode="int8", io_type="int8", quantizer="ai_edge_quantizer", int16_layers=("stage9_*",))
    with pytest.raises(ConversionError, match=r"int16_layers \['stage9_\*'\] match no layer of this model"):
        convert_isolated(tiny_float_run, recipe, calibration)


def test_min_max_ranges_keep_the_largest_logit_the_moving_average_pulls_down(tiny_float_run, calibration):
    """ai-edge-quantizer averages each tensor's per-image maxima by default; `range_statistic: min_max` keeps the
    largest. Oracle: the float Keras model's class logits on the same calibration images. The int8 output's top
    (127 - zero point) x scale must reach their maximum (within one step, and at least 0: a range holds zero), and
    the moving average's top must not exceed min-max's."""
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.quantization.isolated import convert_isolated
    from tfyolo.tflite_runtime import make_interpreter

    logits = load_keras_model(tiny_float_run)(calibration, training=False)["class_logits"].numpy()
    tops = {}
    for statistic in ("min_max", "moving_average"):
        recipe = Recipe(
            name=f"int8_aeq_{statistic}_int8io",
            mode="int8",
            io_type="int8",
            quantizer="ai_edge_quantizer",
            range_statistic=statistic,
        )
        interpreter = make_interpreter(model_content=convert_isolated(tiny_float_run, recipe, calibration))
        detail = next(d for d in interpreter.get_output_details() if "class_logits" in d["name"])
        scale, zero_point = detail["quantization"]
        tops[statistic] = (scale, (127 - zero_point) * scale)
    scale, top = tops["min_max"]
    assert top == pytest.approx(max(float(logits.max()), 0.0), abs=scale)
    assert tops["moving_average"][1] <= top + tops["moving_average"][0]
    with pytest.raises(ConfigError, match="range_statistic chooses how ai-edge-quantizer summarizes"):
        Recipe(name="r", mode="int8", range_statistic="min_max")
