"""Empirical bias correction (Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization and Bias
Correction", section 4.2): an int8 convolution whose output is off on average from the float model's, per channel,
has that mean error taken out of its int32 bias.

Rounding weights and activations to 8 bits is not unbiased per channel: a kernel's rounding errors sum to a constant
offset on every output, and an activation range that clips a tail shifts the next layer's mean. The float model's
answer is measured once on the calibration images; then the int8 file's convolutions are corrected one at a time in
graph order, each measured after every correction before it, so that a layer takes out only the error it adds. All
at once, from one measurement, every layer would also correct what it inherits, many times over (measured: the COCO
YOLO11n fell from -0.31 to -9.38 pt).

Only the bias changes (one int32 per output channel at scale input x weight scale): the file keeps its operators,
ranges and latency."""

import re
import sys
import warnings

import numpy as np
from tqdm import tqdm

from tfyolo.tflite_runtime import builtin_code

# Convolutions whose third input is an int32 bias (TRANSPOSE_CONV keeps its bias fourth; the detectors' single one,
# the segmenter's prototype upsampling, is left as it is).
CORRECTED_OPERATORS = ("CONV_2D", "DEPTHWISE_CONV_2D")
# Images the mean errors are measured on: the first of the calibration set. Each correction runs the int8 file on
# them once (about 0.3 s per layer at 320 px for 32 images on two cores).
BIAS_CORRECTION_IMAGES = 32


def _int8_convolutions(model):
    """[(output tensor name, op)] of the convolutions with an int32 bias in a flatbuffer object-API `model`, in the
    graph's execution order."""
    from tensorflow.lite.python import schema_py_generated as schema

    codes = {index: builtin_code(code) for index, code in enumerate(model.operatorCodes)}
    wanted = {getattr(schema.BuiltinOperator, name) for name in CORRECTED_OPERATORS}
    graph = model.subgraphs[0]
    return [
        (graph.tensors[op.outputs[0]].name.decode(), op)
        for op in graph.operators
        if codes[op.opcodeIndex] in wanted
        and len(op.inputs) > 2
        and op.inputs[2] >= 0
        and graph.tensors[op.inputs[2]].type == schema.TensorType.INT32
    ]


def _channel_means(content, images, names):
    """{tensor name: its per-channel mean over `images`} of the model `content` (integer tensors dequantized)."""
    from ai_edge_litert.interpreter import Interpreter

    from tfyolo.evaluation.runners import dequantize, quantize

    with warnings.catch_warnings():  # LiteRT warns that keeping every tensor is for debugging: here it is the point
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(model_content=content, experimental_preserve_all_tensors=True, num_threads=2)
    interpreter.allocate_tensors()
    tensors = {detail["name"]: detail for detail in interpreter.get_tensor_details() if detail["name"] in names}
    feed_detail = interpreter.get_input_details()[0]
    sums = {name: 0.0 for name in tensors}
    for image in images:
        interpreter.set_tensor(feed_detail["index"], quantize(image[None].astype(np.float32), feed_detail))
        interpreter.invoke()
        for name, detail in tensors.items():
            values = dequantize(interpreter.get_tensor(detail["index"]), detail)
            sums[name] = sums[name] + values.reshape(-1, values.shape[-1]).mean(axis=0)
    return {name: total / len(images) for name, total in sums.items()}


def correct_biases(fp32_content, int8_content, images, layers=".*"):
    """`int8_content` (ai-edge-quantizer's int8 of `fp32_content`, which keeps the float model's tensor names) with
    the mean per-channel output error over `images` of each convolution whose output tensor name matches the regex
    `layers` taken out of its bias, layer by layer."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(int8_content))
    graph = model.subgraphs[0]
    convolutions = [(name, op) for name, op in _int8_convolutions(model) if re.fullmatch(layers, name)]
    exact = _channel_means(fp32_content, images, {name for name, _ in convolutions})
    # A bar as ai-edge-quantizer draws its calibration's: a layer takes a run over the images.
    for name, op in tqdm(convolutions, desc="bias correction", unit="layer", file=sys.stderr, leave=False):
        if name not in exact:  # a tensor the float file names otherwise: left as it is
            continue
        content = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
        error = _channel_means(content, images, {name})[name] - exact[name]
        inputs, weights, bias = (graph.tensors[index] for index in op.inputs[:3])
        buffer = model.buffers[bias.buffer]
        values = np.frombuffer(bytes(buffer.data), np.int32).astype(np.int64)
        step = inputs.quantization.scale[0] * np.broadcast_to(np.asarray(weights.quantization.scale), values.shape)
        values = np.clip(values - np.round(error / step), np.iinfo(np.int32).min, np.iinfo(np.int32).max)
        buffer.data = np.frombuffer(values.astype(np.int32).tobytes(), np.uint8)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
