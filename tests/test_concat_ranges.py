"""A concatenation input whose range is close to the output's takes the output's range (rounded once, no requantize);
one whose range is far keeps its own."""

import numpy as np
import pytest
import tensorflow as tf

from tfyolo.compat import keras
from tfyolo.quantization.aeq import share_concatenation_ranges


@pytest.fixture(scope="module")
def concat_model():
    """fp32 TFLite: wide = conv(x); narrow = maxpool(conv(x)); out = concat(wide, narrow). Returns the content and
    the tensor names of wide, the narrow conv, its max-pool and the concatenation."""
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
    outputs = keras.layers.Concatenate(name="joined")([wide, narrow])
    content = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, outputs)).convert()
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


def test_a_kept_concatenation_keeps_every_input_s_own_range(concat_model):
    # The prediction outputs' concatenation over the levels: each level keeps its own grid.
    content, wide, narrow_conv, pooled, joined = concat_model
    ranges = ranges_of({wide: (-0.9, 2.8), narrow_conv: (-0.1, 1.0), pooled: (-0.1, 1.0), joined: (-1.0, 3.0)})
    kept = share_concatenation_ranges(content, ranges, 0.2, keep={joined})
    assert {name: (float(r["min"]), float(r["max"])) for name, r in kept.items()} == {
        name: (float(r["min"]), float(r["max"])) for name, r in ranges.items()
    }


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

    assert requantizing_ops(None) >= 1
    assert requantizing_ops(0.01) == 0


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
