"""Runners: one `predict(batch) -> (boxes, scores)` for every kind of model.

Every runner splits into `predict_raw` (the model's own outputs, dequantized to float) and `decode` (shared,
float, numpy), so a difference between two models is always the models' and never the pipeline's.
boxes are xyxy normalized to the model input, scores are per-class probabilities.
"""

from pathlib import Path

import numpy as np

from tfyolo.config import STRIDES
from tfyolo.errors import ModelError
from tfyolo.models.yolo_detector import BOX_OUTPUT, CLASS_OUTPUT
from tfyolo.ops.boxes import convert_format
from tfyolo.ops.decode import decode_predictions

LAYOUTS = ("tfyolo", "ultralytics")
ULTRALYTICS_OUTPUT = "output0"


def decode_tfyolo(raw, input_size, reg_max=16, strides=STRIDES):
    return decode_predictions(raw[BOX_OUTPUT], raw[CLASS_OUTPUT], input_size, strides, reg_max)


def decode_ultralytics(raw, input_size):
    """Ultralytics' TFLite export: one (B, 4 + nc, N) tensor, cx cy w h then sigmoid scores.

    Its exporter normalizes boxes by the input size; older exports keep pixels, recognized by values far above 1.
    """
    output = np.transpose(raw[ULTRALYTICS_OUTPUT], (0, 2, 1)).astype(np.float32)
    boxes = output[..., :4]
    if np.abs(boxes).max(initial=0.0) > 2.0:
        boxes = boxes / input_size
    return convert_format(boxes, "cxcywh", "xyxy").astype(np.float32), output[..., 4:]


class KerasRunner:
    """Runs an in-memory Keras detector (float or QAT) in inference mode.

    Args:
        model: keras.Model with the `box_distribution` and `class_logits` outputs.
        reg_max: int. DFL bins of the model.
    """

    layout = "tfyolo"

    def __init__(self, model, reg_max=16, description="keras model"):
        from tfyolo.compat import tf

        self.model = model
        self.reg_max = reg_max
        self.description = description
        self.input_size = int(model.input_shape[1])
        self.num_classes = int(model.output_shape[CLASS_OUTPUT][-1])
        self._forward = tf.function(lambda images: model(images, training=False), reduce_retracing=True)

    def predict_raw(self, batch):
        outputs = self._forward(batch)
        return {BOX_OUTPUT: outputs[BOX_OUTPUT].numpy(), CLASS_OUTPUT: outputs[CLASS_OUTPUT].numpy()}

    def decode(self, raw):
        return decode_tfyolo(raw, self.input_size, self.reg_max)

    def predict(self, batch):
        return self.decode(self.predict_raw(batch))


class SavedModelRunner(KerasRunner):
    """Runs a SavedModel's serving signature (as exported by `tfyolo.export`)."""

    def __init__(self, path, reg_max=16):
        from tfyolo.compat import tf

        try:
            loaded = tf.saved_model.load(str(path))
        except (OSError, ValueError) as error:
            raise ModelError(f"{path}: cannot load as a SavedModel ({str(error).splitlines()[0]}).")
        if "serving_default" not in loaded.signatures:
            raise ModelError(f"{path}: SavedModel has no serving_default signature.")
        self._signature = loaded.signatures["serving_default"]
        self._loaded = loaded
        outputs = self._signature.structured_outputs
        if set(outputs) != {BOX_OUTPUT, CLASS_OUTPUT}:
            raise ModelError(f"{path}: outputs {sorted(outputs)} are not a tfyolo detector's.")
        spec = list(self._signature.structured_input_signature[1].values())[0]
        self.reg_max = reg_max
        self.description = str(path)
        self.input_size = int(spec.shape[1])
        self.num_classes = int(outputs[CLASS_OUTPUT].shape[-1])
        self._input_name = list(self._signature.structured_input_signature[1])[0]

    def predict_raw(self, batch):
        outputs = self._signature(**{self._input_name: batch})
        return {name: outputs[name].numpy() for name in (BOX_OUTPUT, CLASS_OUTPUT)}


def quantize(values, detail):
    """float -> the tensor's integer type with the interpreter's own scale and zero point (round, saturate)."""
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return values.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(values, detail):
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return values.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def _identify_outputs(details, input_size, path):
    """Maps output details to names by name first, then by shape (TFLite reorders outputs), and picks the layout."""
    anchors = sum((input_size // stride) ** 2 for stride in STRIDES)
    by_name = {}
    for detail in details:
        for name in (BOX_OUTPUT, CLASS_OUTPUT):
            if name in detail["name"]:
                by_name[name] = detail
    if len(by_name) == 2:
        return "tfyolo", by_name
    if len(details) == 2:
        shapes = [tuple(detail["shape"]) for detail in details]
        if all(len(shape) == 3 and shape[1] == anchors for shape in shapes):
            box = [d for d in details if d["shape"][2] % 4 == 0 and d["shape"][2] >= 8]
            # The box tensor has 4 * reg_max channels; if both could be, the wider one is the box distribution.
            box = max(box or details, key=lambda d: d["shape"][2])
            cls = next(d for d in details if d is not box)
            return "tfyolo", {BOX_OUTPUT: box, CLASS_OUTPUT: cls}
    if len(details) == 1:
        shape = tuple(details[0]["shape"])
        if len(shape) == 3 and shape[2] == anchors and shape[1] > 4:
            return "ultralytics", {ULTRALYTICS_OUTPUT: details[0]}
    raise ModelError(
        f"{path}: outputs {[(d['name'], tuple(d['shape'])) for d in details]} are not a detector this tool "
        f"understands; expected tfyolo's (1, {anchors}, 4*reg_max) + (1, {anchors}, classes) or Ultralytics' "
        f"(1, 4 + classes, {anchors}) for a {input_size}px input."
    )


class TFLiteRunner:
    """Runs a .tflite detector through the LiteRT interpreter (`ai_edge_litert`), one image per invoke.

    Inputs are quantized and outputs dequantized from the interpreter's own tensor details, so float, int8,
    uint8 and int16 I/O models all take and give float. Outputs are matched by name or shape, not by order.

    Args:
        path: str or Path of the .tflite file (or `model_content` bytes).
        num_threads: int. Interpreter threads.
        layout: "auto", "tfyolo" or "ultralytics".
    """

    def __init__(self, path=None, num_threads=2, layout="auto", reg_max=16, model_content=None):
        from tfyolo.quantization.tflite_inspect import make_interpreter

        self.description = str(path) if path else "tflite bytes"
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ModelError(f"{path}: model file not found.")
            model_content = path.read_bytes()
        try:
            self.interpreter = make_interpreter(model_content=model_content, num_threads=num_threads)
        except (ValueError, RuntimeError) as error:
            raise ModelError(f"{self.description}: not a valid TFLite model ({str(error).splitlines()[0]}).")
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1 or len(inputs[0]["shape"]) != 4 or inputs[0]["shape"][3] != 3:
            raise ModelError(
                f"{self.description}: expected one NHWC image input (1, H, W, 3), found "
                f"{[tuple(d['shape']) for d in inputs]}."
            )
        self.input_detail = inputs[0]
        self.input_size = int(self.input_detail["shape"][1])
        if self.input_detail["shape"][2] != self.input_size:
            raise ModelError(f"{self.description}: input {tuple(self.input_detail['shape'])} is not square.")
        detected, outputs = _identify_outputs(self.interpreter.get_output_details(), self.input_size, self.description)
        if layout not in ("auto", *LAYOUTS):
            raise ModelError(f"--layout must be auto, tfyolo or ultralytics, received {layout!r}.")
        if layout != "auto" and layout != detected:
            raise ModelError(f"{self.description}: --layout {layout} was asked for, but its outputs are {detected}'s.")
        self.layout = detected
        self.outputs = outputs
        self.reg_max = int(outputs[BOX_OUTPUT]["shape"][2] // 4) if detected == "tfyolo" else None
        self.num_classes = (
            int(outputs[CLASS_OUTPUT]["shape"][2])
            if detected == "tfyolo"
            else int(outputs[ULTRALYTICS_OUTPUT]["shape"][1] - 4)
        )

    def predict_raw(self, batch):
        if batch.shape[1:3] != (self.input_size, self.input_size):
            raise ModelError(
                f"{self.description}: takes {self.input_size}x{self.input_size} inputs, received "
                f"{batch.shape[1]}x{batch.shape[2]}."
            )
        collected = {name: [] for name in self.outputs}
        for image in batch:
            self.interpreter.set_tensor(self.input_detail["index"], quantize(image[None], self.input_detail))
            self.interpreter.invoke()
            for name, detail in self.outputs.items():
                collected[name].append(dequantize(self.interpreter.get_tensor(detail["index"]), detail))
        return {name: np.concatenate(values) for name, values in collected.items()}

    def decode(self, raw):
        if self.layout == "ultralytics":
            return decode_ultralytics(raw, self.input_size)
        return decode_tfyolo(raw, self.input_size, self.reg_max)

    def predict(self, batch):
        return self.decode(self.predict_raw(batch))


def open_runner(path, num_threads=2, layout="auto"):
    """A runner for a .keras file, a SavedModel folder or a .tflite file, chosen by what `path` is."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: model not found.")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return SavedModelRunner(path)
        raise ModelError(f"{path}: a folder, but not a SavedModel (no saved_model.pb).")
    if path.suffix == ".tflite":
        return TFLiteRunner(path, num_threads=num_threads, layout=layout)
    if path.suffix in (".keras", ".h5"):
        from tfyolo.models.model_io import load_any_detector

        return KerasRunner(load_any_detector(path), description=str(path))
    raise ModelError(f"{path}: unknown model type {path.suffix!r}; expected .keras, .tflite or a SavedModel folder.")
