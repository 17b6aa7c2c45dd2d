"""Static int8 through ai-edge-quantizer, with 16-bit activations where int8 hurts.

TFLiteConverter's int8 gives every input of a CONCATENATION the output's scale, so a branch with a small range is
quantized on the grid of the widest one. ai-edge-quantizer quantizes the fp32 TFLite op by op and requantizes
where scales differ instead; it also takes per-op recipes, which is what mixed precision needs: chosen layers get
16-bit activations (int8 weights, the 16x8 kernels), the rest int8. Every op stays integer; on CPUs the 16-bit ops
run on reference kernels, not XNNPACK.

Calibration keeps two summaries of every tensor's range over the images: ai-edge-quantizer's moving average of the
per-image minima and maxima (smoothing 0.95), and their extremes. Inside the network a range that clips the rare
outlier buys resolution (the extremes everywhere measured -2.2 to -2.9 pt on the COCO YOLOv8n, -4.21 on YOLO26n),
but on the prediction outputs a clipped value is a wrong answer: every score above the range's top reads as that
top (ties among the most confident detections, which AP ranks first) and every box bin or distance beyond it is cut
short. So the prediction outputs always get their extremes ("outputs_*" statistics). Inside, "outputs_mse" (the
default of YOLOv8 and YOLO11: `ModelFamily.int8_ranges`, filled in by `Recipe.for_family`) takes the range of least
squared quantization error on a histogram of every calibration value, no wider than the moving average
(`tfyolo.quantization.mse_ranges`): on 80-class COCO models scored on unseen images it kept 0.4-0.5 pt more than
the moving average on those families; "outputs_min_max" (YOLO26's, which lost 0.45 pt on that mean with MSE ranges)
keeps the moving average there (docs/quantization.md).
"""

import re

import numpy as np

from tfyolo.errors import ConfigError
from tfyolo.quantization.concat_requantization import (
    hoist_upsample_requantization,
    share_concatenation_ranges,
    share_sole_inputs,
)
from tfyolo.quantization.mse_ranges import mse_ranges
from tfyolo.quantization.percentile_ranges import percentile_ranges
from tfyolo.quantization.recipe import RANGE_STATISTICS
from tfyolo.tflite_runtime import SIGNATURE_KEY, builtin_code

# The input name of the fp32 model's serving signature (tfyolo.quantization.signature).
INPUT_NAME = "images"
# The statistics whose ranges inside the network come from a second pass over the calibration images, every value of
# a tensor pooled into one histogram: the function that chooses each tensor's range from it, no wider than the
# moving average (`tfyolo.quantization.mse_ranges.pooled_histograms`).
POOLED_RANGES = {"outputs_mse": mse_ranges, "outputs_percentile": percentile_ranges}


def layer_regex(patterns):
    """A regex on TFLite tensor names matching the ops of the Keras layers named by `patterns` (names or fnmatch
    patterns): a tensor name carries its layer as a path component ("model/stage1_cv1a_conv/Conv2D"), and a fused
    conv + BatchNorm + activation tensor names each of its layers."""
    # fnmatch's wildcards, kept inside one path component.
    alternatives = "|".join(re.escape(pattern).replace(r"\*", "[^/;]*").replace(r"\?", "[^/;]") for pattern in patterns)
    return rf"(^|.*[/;])({alternatives})/.*"


def block_pattern(layer):
    """The layers that make one conv block (conv, its BatchNorm, its activation) from the conv's name; a head's
    final prediction conv is a block on its own."""
    return layer.removesuffix("_conv") + "_*" if layer.endswith("_conv") else layer


def quantize(fp32_content, recipe, calibration_images):
    """fp32 TFLite bytes -> static int8 TFLite bytes, `recipe.int16_layers` with 16-bit activations."""
    from ai_edge_quantizer import qtyping, quantizer

    granularity = qtyping.QuantGranularity.CHANNELWISE if recipe.per_channel else qtyping.QuantGranularity.TENSORWISE
    every_op = qtyping.TFLOperationName.ALL_SUPPORTED
    engine = quantizer.Quantizer(fp32_content)
    engine.add_static_config(".*", every_op, activation_num_bits=8, weight_num_bits=8, weight_granularity=granularity)
    int16_regex = layer_regex(recipe.int16_layers) if recipe.int16_layers else None
    if int16_regex:
        # A later rule wins where both match: these ops move to 16-bit activations.
        engine.add_static_config(
            int16_regex,
            every_op,
            activation_num_bits=16,
            weight_num_bits=8,
            weight_granularity=granularity,
        )
    samples = [{INPUT_NAME: image[None].astype("float32")} for image in calibration_images]
    # A recipe that names none and was not given its model family's (`Recipe.for_family`, which every artifact of a
    # job goes through): a caller converting bytes alone, with no model metadata to read a family from.
    statistic = recipe.range_statistic or RANGE_STATISTICS[0]
    predictions = None
    if statistic.startswith("outputs_") or recipe.min_score is not None:
        from tfyolo.quantization.head_tensors import prediction_tensor_names

        predictions = prediction_tensor_names(fp32_content)
    calibration = calibrate(fp32_content, engine, samples)
    if statistic in POOLED_RANGES:
        for name, (low, high) in POOLED_RANGES[statistic](fp32_content, calibration_images, calibration).items():
            calibration[name].update(pooled_min=low, pooled_max=high)
    int16_pattern = re.compile(int16_regex) if int16_regex else None
    calibration = share_sole_inputs(fp32_content, choose_ranges(calibration, statistic, predictions), int16_pattern)
    if recipe.concat_shared_range is not None:
        calibration = share_concatenation_ranges(fp32_content, calibration, recipe.concat_shared_range)
    if recipe.min_score is not None:
        from tfyolo.models.detect_head import CLASS_OUTPUT
        from tfyolo.quantization.score_floor import floor_calibration_result

        calibration = floor_calibration_result(calibration, predictions[CLASS_OUTPUT], recipe.min_score)
    content = inline_buffers(bytes(engine.quantize(calibration, enable_progress_report=False).quantized_model))
    if recipe.bias_correction_layers:
        from tfyolo.quantization.bias_correction import BIAS_CORRECTION_IMAGES, correct_biases

        corrected = layer_regex(recipe.bias_correction_layers)
        content = correct_biases(fp32_content, content, calibration_images[:BIAS_CORRECTION_IMAGES], corrected)
    content = hoist_upsample_requantization(content)
    refuse_saturated_biases(content)
    return with_float_boundary(content) if recipe.io_type == "float32" else content


def refuse_saturated_biases(model_content):
    """ai-edge-quantizer scales a bias by input scale x weight scale; a kernel channel that is all zero gets a weight
    scale of ~1e-12, its bias overflows int32 and is stored at the int32 limit, so that channel outputs a range end
    instead of its constant. One dead channel among many costs what the benchmarks measure (the COCO YOLO11n's PSA
    has one; its int8 holds), but a layer whose every channel overflowed outputs one value whatever its input (a
    hand-built detector with constant box convolutions scored 0 with no error): that is refused, naming the way out.
    TFLiteConverter gives such channels a usable scale."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_content))
    graph = model.subgraphs[0]
    # ai-edge-quantizer clips a bias to the symmetric int32 range, [-(2^31 - 1), 2^31 - 1].
    limit = np.iinfo(np.int32).max

    def values(index, dtype):
        tensor = graph.tensors[index]
        data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
        return None if data is None else np.frombuffer(bytes(data), dtype)

    saturated = []
    for op in graph.operators:
        inputs = list(op.inputs)
        if len(inputs) < 3 or inputs[2] < 0 or graph.tensors[inputs[2]].type != schema.TensorType.INT32:
            continue
        bias, kernel = values(inputs[2], np.int32), values(inputs[1], np.int8)
        # Only a kernel that is all zero with every bias at the limit: the layer outputs a constant.
        saturated_bias = bias is not None and bias.size and (np.abs(bias.astype(np.int64)) >= limit).all()
        if saturated_bias and kernel is not None and not kernel.any():
            name = graph.tensors[inputs[2]].name
            saturated.append(name.decode() if isinstance(name, bytes) else name)
    if saturated:
        raise ConfigError(
            f"ai-edge-quantizer overflowed every int32 bias of {len(saturated)} layer(s) (e.g. "
            f"{saturated[0][:80]!r}): their kernels are all zero, which leaves no weight scale, and the layer would "
            "output one value whatever its input. Convert this model with int8_tflite."
        )


def both_statistics(summary, new):
    """ai-edge-quantizer's update of a tensor's range summary (its `qsv_update_func`) that keeps its moving average
    in "min"/"max" and, beside it, the extremes and the sums of the per-image minima and maxima with their count
    (for the plain mean). The calibrator stores a tensor's first range as it comes, so a summary without the extra
    keys is one image's range."""
    from ai_edge_quantizer.utils import qsv_utils

    updated = qsv_utils.moving_average_update(summary, new)
    updated["extreme_min"] = np.minimum(summary.get("extreme_min", summary["min"]), new["min"])
    updated["extreme_max"] = np.maximum(summary.get("extreme_max", summary["max"]), new["max"])
    updated["sum_min"] = summary.get("sum_min", summary["min"]) + new["min"]
    updated["sum_max"] = summary.get("sum_max", summary["max"]) + new["max"]
    updated["count"] = summary.get("count", 1) + 1
    return updated


def inner_range(summary, statistic):
    """(min, max) of a tensor inside the network: the moving average, the plain mean of the per-image ranges
    for the "_mean" statistics (every image weighs the same; the moving average gives the first image 0.95^(n-1)
    of the weight, 0.20 at 32 images), or for the `POOLED_RANGES` statistics the range their function chose from
    the pooled values (the least squared error, the percentiles; the model's input keeps the average)."""
    if statistic.endswith("_mean") and "count" in summary:
        return summary["sum_min"] / summary["count"], summary["sum_max"] / summary["count"]
    if statistic in POOLED_RANGES and "pooled_min" in summary:
        return summary["pooled_min"], summary["pooled_max"]
    return summary["min"], summary["max"]


def calibrate(fp32_content, engine, samples):
    """{tensor name: {"min", "max" (moving averages), "extreme_min", "extreme_max"}} over `samples`.
    `Quantizer.calibrate` takes no update function, so its Calibrator is built here with the engine's own recipe
    (a private attribute of the pinned ai-edge-quantizer)."""
    from ai_edge_quantizer import calibrator

    calibration = calibrator.Calibrator(fp32_content, num_threads=1, qsv_update_func=both_statistics)
    calibration.calibrate({SIGNATURE_KEY: samples}, engine._recipe_manager)
    return calibration.get_model_qsvs()


def choose_ranges(calibration, statistic, predictions=None):
    """The calibration ai-edge-quantizer quantizes with ({tensor name: {"min", "max"}}) for a recipe's
    `range_statistic`: "moving_average" everywhere, "min_max" (the extremes) everywhere, "outputs_min_max": the
    extremes at the ends `tfyolo.models.prediction_outputs.PREDICTION_OUTPUTS` names for each prediction output (the
    boxes' both ends, the class logits' top; a segmenter's mask outputs keep the average), the average elsewhere,
    "outputs_mean": the same extremes, the plain mean of the per-image ranges elsewhere, "outputs_mse": the same
    extremes, the MSE-optimal range elsewhere, or "outputs_percentile": the same extremes, the pooled percentiles
    elsewhere.
    predictions: `head_tensors.prediction_tensor_names` of the model, for the "outputs_" statistics."""
    from tfyolo.models.prediction_outputs import outputs_with_extreme

    if statistic == "min_max":
        extreme_min = extreme_max = set(calibration)
    elif statistic.startswith("outputs_"):
        extreme_min = set().union(*(predictions.get(output, ()) for output in outputs_with_extreme("min")))
        extreme_max = set().union(*(predictions.get(output, ()) for output in outputs_with_extreme("max")))
    else:
        extreme_min = extreme_max = set()
    # Zero stays inside every range, as an int8 grid must hold it exactly (padding, ReLU's floor): a tensor whose
    # values all lie on one side of zero (the DFL logits of a detector sure of every box) would otherwise get a
    # zero point outside int8, and ai-edge-quantizer then writes a range that reads every value as 0.
    chosen = {}
    for name, summary in calibration.items():
        low, high = inner_range(summary, statistic)
        chosen[name] = {
            "min": np.minimum(summary.get("extreme_min", summary["min"]) if name in extreme_min else low, 0.0),
            "max": np.maximum(summary.get("extreme_max", summary["max"]) if name in extreme_max else high, 0.0),
        }
    return chosen


def inline_buffers(model_content):
    """The same model with every constant buffer inside the flatbuffer. ai-edge-quantizer stores them by offset after
    it (the layout meant for models over 2 GB), which TFLite Micro reads wrong: its int8 artifacts diverged from
    LiteRT's reference kernels by 150-244 steps from the second convolution on (`make bench-targets`), as
    Ultralytics' own LiteRT int8 exports do. TensorFlow's object API reads offset buffers and writes them inline."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_content))
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def with_float_boundary(model_content):
    """The same integer model with float32 I/O: a QUANTIZE before each int8 input and a DEQUANTIZE after each int8
    output, as TFLiteConverter's int8 with float I/O has. ai-edge-quantizer always quantizes the graph's input and
    outputs; a CPU application feeds and reads floats, and these two ops (one multiply-add per element) are what
    it would otherwise write itself. The float tensors take the boundary's names, so the signature reads as before."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_content))
    graph = model.subgraphs[0]

    def opcode(builtin):
        for index, code in enumerate(model.operatorCodes):
            if builtin_code(code) == builtin:
                return index
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.version = 1
        model.operatorCodes.append(code)
        return len(model.operatorCodes) - 1

    def float_twin(index):
        """A float32 tensor of the int8 tensor's shape, which takes over its name; returns its index."""
        integer = graph.tensors[index]
        twin = schema.TensorT()
        twin.name, twin.shape, twin.type = integer.name, integer.shape, schema.TensorType.FLOAT32
        twin.shapeSignature = integer.shapeSignature
        model.buffers.append(schema.BufferT())
        twin.buffer = len(model.buffers) - 1
        integer.name = integer.name + b"_int8" if isinstance(integer.name, bytes) else integer.name + "_int8"
        graph.tensors.append(twin)
        return len(graph.tensors) - 1

    def operator(code, inputs, outputs):
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = code, inputs, outputs
        return op

    renamed = {}
    for position, index in enumerate(graph.inputs):
        twin = renamed[index] = float_twin(index)
        graph.operators.insert(0, operator(opcode(schema.BuiltinOperator.QUANTIZE), [twin], [index]))
        graph.inputs[position] = twin
    for position, index in enumerate(graph.outputs):
        twin = renamed[index] = float_twin(index)
        graph.operators.append(operator(opcode(schema.BuiltinOperator.DEQUANTIZE), [index], [twin]))
        graph.outputs[position] = twin
    for signature in model.signatureDefs or []:
        for entry in list(signature.inputs or []) + list(signature.outputs or []):
            entry.tensorIndex = renamed.get(entry.tensorIndex, entry.tensorIndex)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def matched_tensor_count(content, patterns):
    """How many op outputs of the TFLite model at `content` the layer patterns select (a recipe whose patterns
    select nothing is an error, not a silent int8)."""
    from tfyolo.tflite_runtime import read_graph

    _, ops, tensors = read_graph(content)
    pattern = re.compile(layer_regex(patterns))
    return sum(bool(pattern.match(tensors[index]["name"])) for op in ops for index in op["outputs"])
