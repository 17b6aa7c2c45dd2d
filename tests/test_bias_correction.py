"""Empirical bias correction, layer by layer: a bias offset put into an int8 file by hand is found and taken out,
and a layer downstream of it is left alone (all at once, from one measurement, it would also correct what it
inherits)."""

import numpy as np
import pytest
import tensorflow as tf

from tfyolo.compat import keras
from tfyolo.quantization.bias_correction import _channel_means, _int8_convolutions, correct_biases


@pytest.fixture(scope="module")
def two_convolutions():
    """(fp32 content, ai-edge-quantizer's int8 of it with int8 I/O, calibration images): images -> 3x3 conv (8) ->
    1x1 conv (4), both linear (a fused ReLU would clip the offset the test puts in), random biases."""
    from tfyolo.quantization.aeq import quantize
    from tfyolo.quantization.recipe import Recipe

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3), name="images")
    biases = keras.initializers.RandomUniform(-0.5, 0.5, seed=1)
    hidden = keras.layers.Conv2D(8, 3, padding="same", bias_initializer=biases, name="first")(inputs)
    outputs = keras.layers.Conv2D(4, 1, bias_initializer=biases, name="second")(hidden)
    fp32 = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, outputs)).convert()
    images = np.random.default_rng(0).uniform(0, 1, (16, 16, 16, 3)).astype(np.float32)
    # Not a detector: no prediction outputs, so the moving average everywhere.
    recipe = Recipe(
        name="int8", mode="int8", io_type="int8", quantizer="ai_edge_quantizer", range_statistic="moving_average"
    )
    return fp32, quantize(fp32, recipe, images), images


def biases(content):
    """[(name, int32 bias, its step = input scale x weight scale, output scale)] of the file's convolutions."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    graph = model.subgraphs[0]
    found = []
    for name, op in _int8_convolutions(model):
        inputs, weights, bias = (graph.tensors[index] for index in op.inputs[:3])
        values = np.frombuffer(bytes(model.buffers[bias.buffer].data), np.int32).copy()
        step = inputs.quantization.scale[0] * np.asarray(weights.quantization.scale)
        found.append((name, values, step, graph.tensors[op.outputs[0]].quantization.scale[0]))
    return found


def with_bias(content, index, values):
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    graph = model.subgraphs[0]
    bias = graph.tensors[_int8_convolutions(model)[index][1].inputs[2]]
    model.buffers[bias.buffer].data = np.frombuffer(values.astype(np.int32).tobytes(), np.uint8)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def test_a_bias_offset_is_found_and_taken_out_and_the_next_layer_is_left_alone(two_convolutions):
    fp32, plain, images = two_convolutions
    (first, first_bias, first_step, first_out_scale), (second, second_bias, _, second_out_scale) = biases(plain)
    # The first layer's channel 0 reads 6 output steps high: 6 x output scale in bias steps.
    offset = np.zeros_like(first_bias)
    offset[0] = int(round(6 * first_out_scale / first_step[0]))
    corrected = correct_biases(fp32, with_bias(plain, 0, first_bias + offset), images)
    assert correct_biases(fp32, with_bias(plain, 0, first_bias + offset), images, ".*second.*") != corrected
    (_, first_fixed, _, _), (_, second_fixed, second_step, _) = biases(corrected)
    # Channel 0 goes back to within an output step of the plain file's bias; the others stay within one.
    assert abs(int(first_fixed[0]) - int(first_bias[0])) <= first_out_scale / first_step[0]
    assert np.all(np.abs(first_fixed[1:].astype(np.int64) - first_bias[1:]) <= first_out_scale / first_step[1:])
    # The second layer, measured after the first is corrected, inherits no offset: its bias moves by what its own
    # rounding adds, less than an output step, not by the 6 x its weights that one measurement would give it.
    assert np.all(np.abs(second_fixed.astype(np.int64) - second_bias) <= second_out_scale / second_step)
    # And the outputs' mean error per channel is under half an output step.
    exact = _channel_means(fp32, images, {second})[second]
    assert np.all(np.abs(_channel_means(corrected, images, {second})[second] - exact) < second_out_scale / 2)


def test_bias_correction_is_a_recipe_key_for_ai_edge_quantizer_only():
    """A list of layer patterns, as int16_layers."""
    from tfyolo.errors import ConfigError
    from tfyolo.quantization.recipe import Recipe

    values = {"name": "r", "mode": "int8", "quantizer": "ai_edge_quantizer", "bias_correction_layers": ["stage*"]}
    assert Recipe.from_dict(values).to_dict()["bias_correction_layers"] == ["stage*"]
    with pytest.raises(ConfigError, match="bias_correction_layers corrects ai-edge-quantizer"):
        Recipe(name="r", mode="int8", quantizer="tflite_converter", bias_correction_layers=("stage*",))
    with pytest.raises(ConfigError, match="'bias_correction_layers' must be a list of layer names"):
        Recipe.from_dict({**values, "bias_correction_layers": "stage*"})
