"""The requantizing QUANTIZE ops before a concatenation (`tfyolo.quantization.concat_requantization`): an input that
nothing else reads takes the output's range; one that other layers read keeps its own unless a recipe's
`concat_shared_range` finds it close enough; an upsampled map is requantized before its upsampling, to the same
bytes."""

import numpy as np
import pytest
import tensorflow as tf

from tfyolo.compat import keras
from tfyolo.quantization.concat_requantization import share_concatenation_ranges, share_sole_inputs


@pytest.fixture(scope="module")
def concat_model():
    """fp32 TFLite: wide = conv(x); narrow = maxpool(conv(x)); out = concat(wide, narrow), and a second output that
    reads narrow too. Returns the content and the tensor names of wide, the narrow conv, its max-pool and the
    concatenation."""
    inputs = keras.Input((8, 8, 3), name="images")
    # Seeded weights, the wide branch's ten times the narrow one's: unseeded, the two branches' ranges could come out
    # alike and leave nothing to requantize.
    wide = keras.layers.Conv2D(4, 1, kernel_initializer=keras.initializers.RandomUniform(-2, 2, seed=1), name="wide")(
        inputs
    )
    narrow_conv = keras.layers.Conv2D(
        4, 1, kernel_initializer=keras.initializers.RandomUniform(-0.2, 0.2, seed=2), name="narrow"
    )(inputs)
    narrow = keras.layers.MaxPooling2D(1, name="pool")(narrow_conv)
    joined = keras.layers.Concatenate(name="joined")([wide, narrow])
    tapped = keras.layers.Conv2D(2, 1, name="tap")(narrow)
    content = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, [joined, tapped])).convert()
    interpreter = tf.lite.Interpreter(model_content=content)
    names = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}
    ops = {op["op_name"]: op for op in interpreter._get_ops_details()}
    concat = ops["CONCATENATION"]
    pool = ops["MAX_POOL_2D"]
    wide_name, pooled_name = (names[index] for index in concat["inputs"])
    assert pooled_name == names[pool["outputs"][0]]
    return content, wide_name, names[pool["inputs"][0]], pooled_name, names[concat["outputs"][0]]


def ranges_of(names_and_ranges):
    return {name: {"min": np.float32(low), "max": np.float32(high)} for name, (low, high) in names_and_ranges.items()}


def test_a_close_input_takes_the_output_range_and_a_far_one_keeps_its_own(concat_model):
    content, wide, narrow_conv, pooled, joined = concat_model
    # wide spans 3.7 of the output's 4.0 (0.925); the pooled narrow branch 1.1 (0.275).
    ranges = ranges_of({wide: (-0.9, 2.8), narrow_conv: (-0.1, 1.0), pooled: (-0.1, 1.0), joined: (-1.0, 3.0)})
    shared = share_concatenation_ranges(content, ranges, 0.6)
    assert float(shared[wide]["min"]) == -1.0 and float(shared[wide]["max"]) == 3.0
    assert float(shared[pooled]["max"]) == pytest.approx(1.0) and float(shared[narrow_conv]["max"]) == pytest.approx(
        1.0
    )
    assert float(ranges[wide]["max"]) == pytest.approx(2.8), "the caller's ranges are not changed in place"


def test_a_shared_range_reaches_up_the_chain_of_scale_carriers(concat_model):
    # At 0.2 the pooled branch is close enough; its max-pool keeps its input's scale, so the conv before it takes the
    # output's range too, or a requantize would come back before the pool.
    content, wide, narrow_conv, pooled, joined = concat_model
    ranges = ranges_of({wide: (-0.9, 2.8), narrow_conv: (-0.1, 1.0), pooled: (-0.1, 1.0), joined: (-1.0, 3.0)})
    shared = share_concatenation_ranges(content, ranges, 0.2)
    for name in (wide, narrow_conv, pooled):
        assert (float(shared[name]["min"]), float(shared[name]["max"])) == (-1.0, 3.0)


def test_an_input_outside_the_output_range_keeps_its_own(concat_model):
    # A moving average can leave an input's end beyond the output's: taking the output's range would clip it.
    content, wide, narrow_conv, pooled, joined = concat_model
    ranges = ranges_of({wide: (-0.9, 3.2), narrow_conv: (-0.1, 1.0), pooled: (-0.1, 1.0), joined: (-1.0, 3.0)})
    assert float(share_concatenation_ranges(content, ranges, 0.6)[wide]["max"]) == pytest.approx(3.2)


def test_an_input_nothing_else_reads_takes_the_output_range_up_its_chain(concat_model):
    # Wide feeds the concatenation alone, however far its range is from the output's; the pooled branch is read by
    # the second output's conv too, so it keeps its own, and so does the conv up its chain.
    content, wide, narrow_conv, pooled, joined = concat_model
    ranges = ranges_of({wide: (-0.1, 0.5), narrow_conv: (-0.9, 2.9), pooled: (-0.9, 2.9), joined: (-1.0, 3.0)})
    shared = share_sole_inputs(content, ranges)
    for name in (wide, joined):
        assert (float(shared[name]["min"]), float(shared[name]["max"])) == (-1.0, 3.0), name
    for name in (narrow_conv, pooled):
        assert (float(shared[name]["min"]), float(shared[name]["max"])) == pytest.approx((-0.9, 2.9)), name


def test_an_input_of_another_bit_width_keeps_its_own_range(concat_model):
    # A 16-bit concatenation (a recipe's int16_layers, matched on tensor names) of an 8-bit input: the output's range
    # is a 16-bit grid, and the input's own 8-bit grid is finer than that range would be in 8 bits.
    import re

    content, wide, narrow_conv, pooled, joined = concat_model
    ranges = ranges_of({wide: (-0.1, 0.5), narrow_conv: (-0.9, 2.9), pooled: (-0.9, 2.9), joined: (-1.0, 3.0)})
    shared = share_sole_inputs(content, ranges, re.compile(re.escape(joined)))
    assert (float(shared[wide]["min"]), float(shared[wide]["max"])) == pytest.approx((-0.1, 0.5))
    # The same input at the concatenation's width takes its range, and each tensor gets its own copy of it.
    both = share_sole_inputs(content, ranges, re.compile(f"{re.escape(joined)}|{re.escape(wide)}"))
    assert (float(both[wide]["min"]), float(both[wide]["max"])) == (-1.0, 3.0)
    assert both[wide] is not both[joined]


def test_shared_ranges_remove_the_requantizing_ops(concat_model):
    """Quantized by ai-edge-quantizer: each concatenation input with its own scale is requantized by a QUANTIZE op;
    with every input sharing the output's range there is none left."""
    from tfyolo.quantization.aeq import quantize
    from tfyolo.quantization.recipe import Recipe

    content = concat_model[0]
    images = np.random.default_rng(0).uniform(0, 1, (8, 8, 8, 3)).astype(np.float32)

    def requantizing_ops(share):
        # Not a detector: no prediction outputs to keep apart, so the moving average everywhere.
        recipe = Recipe(
            name="int8",
            mode="int8",
            io_type="int8",
            quantizer="ai_edge_quantizer",
            range_statistic="moving_average",
            concat_shared_range=share,
        )
        quantized = tf.lite.Interpreter(model_content=quantize(content, recipe, images))
        return sum(op["op_name"] == "QUANTIZE" for op in quantized._get_ops_details())

    # Without a share, only the pooled narrow branch (which the second output reads too) is requantized.
    assert requantizing_ops(None) == 1
    assert requantizing_ops(0.01) == 0


def test_an_upsampled_map_is_requantized_before_its_upsampling_to_the_same_bytes(monkeypatch):
    """small = conv(x, stride 2), read by a second output too; joined = concat(upsample(small), conv(x)). The int8
    model requantizes the 4x4 map, then upsamples it; its outputs equal those of the model that requantizes the
    upsampled 8x8 one, on every element."""
    from tfyolo.quantization import aeq
    from tfyolo.quantization.concat_requantization import hoist_upsample_requantization
    from tfyolo.quantization.recipe import Recipe

    inputs = keras.Input((8, 8, 3), name="images")
    small = keras.layers.Conv2D(
        4, 1, strides=2, kernel_initializer=keras.initializers.RandomUniform(-0.2, 0.2, seed=3), name="small"
    )(inputs)
    full = keras.layers.Conv2D(4, 1, kernel_initializer=keras.initializers.RandomUniform(-2, 2, seed=4), name="full")(
        inputs
    )
    upsampled = keras.layers.UpSampling2D(2, interpolation="nearest", name="up")(small)
    joined = keras.layers.Concatenate(name="joined")([upsampled, full])
    tapped = keras.layers.Conv2D(2, 1, name="tap")(small)
    content = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, [joined, tapped])).convert()
    images = np.random.default_rng(1).uniform(0, 1, (8, 8, 8, 3)).astype(np.float32)
    recipe = Recipe(name="int8", mode="int8", io_type="int8", quantizer="ai_edge_quantizer", range_statistic="min_max")
    monkeypatch.setattr(aeq, "hoist_upsample_requantization", lambda model: model)
    requantized_after = aeq.quantize(content, recipe, images)
    hoisted = hoist_upsample_requantization(requantized_after)

    def run(model_content):
        interpreter = tf.lite.Interpreter(model_content=model_content)
        interpreter.allocate_tensors()
        tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
        ops = interpreter._get_ops_details()
        answers = []
        for image in np.random.default_rng(2).integers(-128, 128, (4, 1, 8, 8, 3)):
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image.astype(np.int8))
            interpreter.invoke()
            answers.append([interpreter.get_tensor(out["index"]).copy() for out in interpreter.get_output_details()])
        return ops, tensors, answers

    before_ops, _, before = run(requantized_after)
    ops, tensors, after = run(hoisted)
    assert [op["op_name"] for op in before_ops].count("QUANTIZE") == [op["op_name"] for op in ops].count("QUANTIZE")
    resize = next(op for op in ops if op["op_name"] == "RESIZE_NEAREST_NEIGHBOR")
    feeding = next(op for op in ops if resize["inputs"][0] in op["outputs"])
    assert feeding["op_name"] == "QUANTIZE", "the upsampling reads the requantized small map"
    # As the file stores it (the interpreter would reshape a QUANTIZE output to its input's shape on its own).
    from tensorflow.lite.tools import flatbuffer_utils

    stored = flatbuffer_utils.read_model_from_bytearray(bytearray(hoisted)).subgraphs[0].tensors
    assert list(stored[resize["inputs"][0]].shape) == [1, 4, 4, 4], "requantized before it is upsampled"
    assert tensors[resize["outputs"][0]]["quantization"] == tensors[feeding["outputs"][0]]["quantization"]
    # The upsampled tensor keeps the upsampling's name, as in the float model.
    float_ops = tf.lite.Interpreter(model_content=content)
    float_names = {detail["index"]: detail["name"] for detail in float_ops.get_tensor_details()}
    float_resize = next(op for op in float_ops._get_ops_details() if op["op_name"] == "RESIZE_NEAREST_NEIGHBOR")
    assert tensors[resize["outputs"][0]]["name"] == float_names[float_resize["outputs"][0]]
    for answer_before, answer_after in zip(before, after):
        for output_before, output_after in zip(answer_before, answer_after):
            np.testing.assert_array_equal(output_before, output_after)


@pytest.mark.parametrize(
    "values, fragment",
    [
        ({"quantizer": "tflite_converter", "concat_shared_range": 0.6}, "TFLiteConverter gives every input"),
        ({"quantizer": "ai_edge_quantizer", "concat_shared_range": 1.5}, "a share above 0 and at most 1"),
        ({"quantizer": "ai_edge_quantizer", "concat_shared_range": 0.0}, "a share above 0 and at most 1"),
    ],
)
def test_a_recipe_s_shared_range_is_checked(tmp_path, values, fragment):
    import yaml

    from tfyolo.errors import ConfigError
    from tfyolo.quantization.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "r", "mode": "int8", **values}))
    with pytest.raises(ConfigError, match=fragment):
        load_recipe(path)
