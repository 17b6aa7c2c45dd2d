"""Empirical bias correction of the built-in int8 (int8 I/O) file, all layers at once: every convolution's per-channel
mean output error (int8 minus float, over COUNT calibration images) times STRENGTH is taken out of its int32 bias;
the corrected file and the plain one are scored against the float model.

Measured once (docs/quantization.md): on the COCO YOLO11n, 16 coco128 images, strength 1, scored on coco_val150:
plain int8 -0.31, corrected -9.38. Each layer's measured error includes what the layers before it pass on, so
correcting every layer from one measurement corrects the inherited error many times over; a correction that holds
has to go layer by layer, measuring each after the ones before are corrected.

Usage: python -m benchmarks.study_bias_correction MODEL.keras CALIBRATION.yaml SCORING.yaml [--count 16] [--strength 1]
"""

import click
import numpy as np

CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def biased_convolutions(model):
    """{output tensor name: op} of the convolutions with a bias in a flatbuffer object-API `model`."""
    from tensorflow.lite.python import schema_py_generated as schema

    codes = {index: max(code.builtinCode, code.deprecatedBuiltinCode) for index, code in enumerate(model.operatorCodes)}
    wanted = {getattr(schema.BuiltinOperator, name) for name in CONVOLUTIONS}
    graph = model.subgraphs[0]
    return {
        graph.tensors[op.outputs[0]].name.decode(): op
        for op in graph.operators
        if codes[op.opcodeIndex] in wanted and len(op.inputs) > 2 and op.inputs[2] >= 0
    }


def tensor_values(content, image, names):
    """{name: float values} of the tensors `names` after running `content` on `image` (int8 ones dequantized)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, experimental_preserve_all_tensors=True, num_threads=2)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    feed = image[None].astype(np.float32)
    if detail["dtype"] == np.int8:
        scale, zero_point = detail["quantization"]
        feed = np.clip(np.round(feed / scale + zero_point), -128, 127).astype(np.int8)
    interpreter.set_tensor(detail["index"], feed)
    interpreter.invoke()
    values = {}
    for tensor in interpreter.get_tensor_details():
        if tensor["name"] in names:
            value = interpreter.get_tensor(tensor["index"]).astype(np.float32)
            if tensor["dtype"] == np.int8:
                scale, zero_point = tensor["quantization"]
                value = (value - zero_point) * scale
            values[tensor["name"]] = value
    return values


def bias_corrected(fp32, integer, images, strength):
    """`integer` (an int8 TFLite of `fp32`) with each convolution's mean per-channel error over `images` taken out
    of its bias, all at once."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(integer))
    graph = model.subgraphs[0]
    convolutions = biased_convolutions(model)
    errors = {}
    for image in images:
        exact, quantized = tensor_values(fp32, image, convolutions), tensor_values(integer, image, convolutions)
        for name in exact.keys() & quantized.keys():
            errors[name] = errors.get(name, 0.0) + (quantized[name] - exact[name]).mean(axis=(0, 1, 2)) / len(images)
    for name, error in errors.items():
        inputs, weights, bias = (graph.tensors[index] for index in convolutions[name].inputs[:3])
        buffer = model.buffers[bias.buffer]
        values = np.frombuffer(bytes(buffer.data), np.int32).astype(np.int64)
        weight_scales = np.broadcast_to(np.asarray(weights.quantization.scale), values.shape)
        step = inputs.quantization.scale[0] * weight_scales
        values = np.clip(values - np.round(strength * error / step), -(2**31), 2**31 - 1).astype(np.int32)
        buffer.data = np.frombuffer(values.tobytes(), np.uint8)
    print(f"corrected {len(errors)} of {len(convolutions)} convolutions")
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("calibration", type=click.Path(exists=True, dir_okay=False))
@click.argument("scoring", type=click.Path(exists=True, dir_okay=False))
@click.option("--count", default=16, show_default=True, help="Calibration images the errors are measured on.")
@click.option("--strength", default=1.0, show_default=True)
def main(model, calibration, scoring, count, strength):
    from tfyolo.data.calibration_images import load_calibration_images
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.evaluation.model_evaluation import evaluate_models
    from tfyolo.evaluation.runners import TFLiteRunner
    from tfyolo.jobs.model_runner import keras_runner
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.quantization import aeq
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.recipe import Recipe
    from tfyolo.quantization.recipes_dir import resolve_recipe

    keras_model = load_keras_model(model)
    fp32 = convert(keras_model, Recipe(name="fp32", mode="fp32"))
    images, _ = load_calibration_images(calibration, int(keras_model.input_shape[1]), 100, seed=0)
    integer = aeq.quantize(fp32, resolve_recipe("int8_int8io"), images)
    corrected = bias_corrected(fp32, integer, images[:count], strength)
    runners = {
        "int8": TFLiteRunner(model_content=aeq.with_float_boundary(integer)),
        "int8, bias-corrected": TFLiteRunner(model_content=aeq.with_float_boundary(corrected)),
    }
    dataset = DetectionDataset.from_data_yaml(scoring, "val")
    reports, _, _ = evaluate_models(runners, dataset, "val", keras_runner(model))
    for name, report in reports.items():
        print(f"{name}: mAP50-95 {report['map50_95']:.4f} ({report['delta_map50_95']:+.2f} pt against float)")


if __name__ == "__main__":
    main()
