"""Runners: one `predict(batch) -> (boxes, scores)` for every kind of model.

Every runner splits into `predict_raw` (the model's own outputs, dequantized to float) and `decode` (shared,
float, numpy), so a difference between two models is always the models' and never the pipeline's.
boxes are xyxy normalized to the model input, scores are per-class probabilities.
"""

import contextlib
from pathlib import Path

import numpy as np

from tfyolo.config import MAX_INPUT_SIZE, STRIDES
from tfyolo.data.images import PAD_VALUE
from tfyolo.errors import ModelError
from tfyolo.models.tasks import MASK_COEFFICIENTS, MASK_PROTOTYPES, SEGMENT, task_of_outputs
from tfyolo.models.yolo_detector import BOX_OUTPUT, CLASS_OUTPUT
from tfyolo.ops.boxes import convert_format
from tfyolo.ops.decode import decode_predictions
from tfyolo.tflite_runtime import read_graph, signature_outputs

LAYOUTS = ("tfyolo", "ultralytics", "ultralytics_end2end")
ULTRALYTICS_OUTPUT = "output0"
# Ultralytics' segmentation exports add the mask prototypes, (1, nm, input / 4, input / 4) in its NCHW LiteRT exports.
ULTRALYTICS_PROTOTYPES = "output1"
# Ultralytics' end-to-end exports (YOLO26 `nms=False`): (1, max_det, 6) rows x1 y1 x2 y2 score class, top-k applied.
END2END_WIDTH = 6
# An Ultralytics output carried on one integer grid shares its step between boxes, scores and (end-to-end) class ids,
# leaving scores in 0-1 about 1/step levels. A one-to-many full-integer export (0-1 boxes and scores) lands near 0.004;
# Ultralytics' end-to-end static int8 ones near 0.3, as class ids up to 79 set the range: 4 score levels, with boxes
# on steps of 0.3 of the input. Ultralytics' segmentation int8 exports add the mask coefficients to that one grid:
# steps of 0.014-0.020 (SOURCE.md of each shared seg model), about 50-70 score levels, which rank well enough for
# Ultralytics' own val. The bound (20 levels) sits well clear of both; a file past it is refused, not scored.
MAX_SHARED_SCORE_STEP = 0.05


def decode_tfyolo(raw, input_size, reg_max=16, strides=STRIDES):
    return decode_predictions(raw[BOX_OUTPUT], raw[CLASS_OUTPUT], input_size, strides, reg_max)


def decode_ultralytics(raw, input_size, normalized, num_masks=0):
    """Ultralytics' export: one (B, 4 + nc, N) tensor, cx cy w h then sigmoid scores; a segmentation export's
    (B, 4 + nc + num_masks, N) ends in each anchor's mask coefficients (`ultralytics_task_outputs`).

    normalized: boxes are fractions of the input (Ultralytics' TFLite exports) rather than pixels (its ONNX and
    SavedModel exports); decided once per model (`TFLiteRunner`), never from one batch's values.
    """
    output = np.transpose(raw[ULTRALYTICS_OUTPUT], (0, 2, 1)).astype(np.float32)
    boxes = output[..., :4] if normalized else output[..., :4] / input_size
    scores = output[..., 4 : output.shape[-1] - num_masks]
    return convert_format(boxes, "cxcywh", "xyxy").astype(np.float32), scores


def ultralytics_task_outputs(raw, num_masks, channels_first):
    """A segmentation export's coefficients and prototypes under tfyolo's names and layouts: (B, N, num_masks) and
    (B, input / 4, input / 4, num_masks), NHWC."""
    coefficients = np.transpose(raw[ULTRALYTICS_OUTPUT][:, -num_masks:, :], (0, 2, 1)).astype(np.float32)
    prototypes = raw[ULTRALYTICS_PROTOTYPES].astype(np.float32)
    if channels_first:
        prototypes = np.transpose(prototypes, (0, 2, 3, 1))
    return {MASK_COEFFICIENTS: coefficients, MASK_PROTOTYPES: prototypes}


def model_output_names(task):
    """The outputs a tfyolo model of `task` gives: detection's two, then those its task adds."""
    return (BOX_OUTPUT, CLASS_OUTPUT, *task.inference_outputs)


def tfyolo_task_outputs(raw, task):
    """The outputs a tfyolo model's task adds, as the model gives them (already tfyolo's names and layouts)."""
    return {name: raw[name] for name in task.inference_outputs}


def decode_ultralytics_end2end(raw, input_size, num_classes, normalized=False):
    """Ultralytics' end-to-end export: (B, k, 6) x1 y1 x2 y2 score class. Each row becomes a box and a score row
    holding its score at its class and 0 elsewhere, so the shared top-k selection (`postprocess` "topk") keeps
    exactly the rows above the threshold, in the export's own order.

    normalized: boxes are fractions of the input (its legacy onnx2tf TFLite exports) rather than pixels (ONNX,
    LiteRT); decided once per model by the same rule as the one-to-many layout's (`TFLiteRunner`).
    """
    output = raw[ULTRALYTICS_OUTPUT].astype(np.float32)
    boxes = output[..., :4] if normalized else output[..., :4] / input_size
    classes = np.clip(np.round(output[..., 5]).astype(np.int64), 0, num_classes - 1)
    scores = np.zeros((*output.shape[:2], num_classes), np.float32)
    np.put_along_axis(scores, classes[..., None], output[..., 4:5], axis=-1)
    return boxes, scores


class KerasRunner:
    """Runs an in-memory Keras detector (float or QAT) in inference mode.

    Args:
        model: keras.Model with the `box_distribution` and `class_logits` outputs, and those its task adds
            (`tfyolo.models.tasks`: a segmentation model's mask coefficients and prototypes).
        reg_max: int or None. Box bins of the model; None reads them off its box output (4 * reg_max wide).
        postprocess: "nms" or "topk" (a one-to-one head): the model config's `postprocess`.
    """

    layout = "tfyolo"

    def __init__(self, model, reg_max=None, description="keras model", postprocess="nms"):
        from tfyolo.compat import tf

        self.model = model
        self.reg_max = reg_max or int(model.output_shape[BOX_OUTPUT][-1]) // 4
        self.postprocess = postprocess
        self.description = description
        self.input_size = int(model.input_shape[1])
        self.num_classes = int(model.output_shape[CLASS_OUTPUT][-1])
        self.task = task_of_outputs(model.output_shape)
        self._forward = tf.function(lambda images: model(images, training=False), reduce_retracing=True)

    def predict_raw(self, batch):
        outputs = self._forward(batch)
        return {name: outputs[name].numpy() for name in model_output_names(self.task)}

    def task_outputs(self, raw):
        return tfyolo_task_outputs(raw, self.task)

    def decode(self, raw):
        return decode_tfyolo(raw, self.input_size, self.reg_max)

    def predict(self, batch):
        return self.decode(self.predict_raw(batch))


class SavedModelRunner(KerasRunner):
    """Runs a SavedModel's serving signature (as exported by `tfyolo.export`)."""

    def __init__(self, path, reg_max=None, postprocess="nms"):
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
        self.task = task_of_outputs(outputs)
        if set(outputs) != set(model_output_names(self.task)):
            raise ModelError(f"{path}: outputs {sorted(outputs)} are not a tfyolo model's.")
        spec = list(self._signature.structured_input_signature[1].values())[0]
        # As for a Keras model: the box output is 4 * reg_max wide (a YOLO26 SavedModel's is 4).
        self.reg_max = reg_max or int(outputs[BOX_OUTPUT].shape[-1]) // 4
        self.postprocess = postprocess
        self.description = str(path)
        self.input_size = int(spec.shape[1])
        self.num_classes = int(outputs[CLASS_OUTPUT].shape[-1])
        self._input_name = list(self._signature.structured_input_signature[1])[0]

    def predict_raw(self, batch):
        outputs = self._signature(**{self._input_name: batch})
        return {name: outputs[name].numpy() for name in model_output_names(self.task)}


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


def _describe(details):
    return [(detail["name"], tuple(int(v) for v in detail["shape"])) for detail in details]


def _tfyolo_outputs(names, found, path):
    """{output name: detail} of tfyolo's detection outputs and those its task adds, from `found` ({name: detail})."""
    wanted = model_output_names(task_of_outputs(names))
    if not all(name in found for name in wanted):
        raise ModelError(f"{path}: its serving_default signature names outputs that are not the graph's outputs.")
    return {name: found[name] for name in wanted}


def _ultralytics_segment(details, anchors, input_size, channels_first):
    """Ultralytics' segmentation export, or None: (1, 4 + nc + nm, anchors) and the prototypes at input / 4, in the
    input's layout ((1, nm, s, s) for its NCHW LiteRT exports, (1, s, s, nm) for NHWC ones)."""
    flat = [detail for detail in details if len(detail["shape"]) == 3 and detail["shape"][2] == anchors]
    protos = [detail for detail in details if len(detail["shape"]) == 4]
    if len(details) != 2 or len(flat) != 1 or len(protos) != 1:
        return None
    shape, side = tuple(int(v) for v in protos[0]["shape"]), input_size // 4
    spatial, num_masks = (shape[2:], shape[1]) if channels_first else (shape[1:3], shape[3])
    if spatial != (side, side) or int(flat[0]["shape"][1]) - 4 - num_masks < 1:
        return None
    return {ULTRALYTICS_OUTPUT: flat[0], ULTRALYTICS_PROTOTYPES: protos[0]}


def _identify_outputs(interpreter, metadata, input_size, path, channels_first=False):
    """Maps output details to tfyolo's output names, or recognizes Ultralytics' single output (and a segmentation
    export's prototypes beside it).

    By the `serving_default` signature first (tfyolo names its outputs there), then by tensor name, then by the
    exact widths that the embedded metadata gives (4 * reg_max and the class count). Never by which is wider:
    with 64 classes and reg_max 16 both tensors are (1, anchors, 64).
    """
    details = interpreter.get_output_details()
    by_index = {detail["index"]: detail for detail in details}
    signature = signature_outputs(interpreter)
    if {BOX_OUTPUT, CLASS_OUTPUT} <= set(signature):
        found = {name: by_index[index] for name, index in signature.items() if index in by_index}
        return "tfyolo", _tfyolo_outputs(signature, found, path)
    known = model_output_names(SEGMENT)
    by_name = {name: detail for detail in details for name in known if name in detail["name"]}
    if {BOX_OUTPUT, CLASS_OUTPUT} <= set(by_name):
        return "tfyolo", _tfyolo_outputs(by_name, by_name, path)
    anchors = sum((input_size // stride) ** 2 for stride in STRIDES)
    segment = _ultralytics_segment(details, anchors, input_size, channels_first)
    if segment:
        return "ultralytics", segment
    if len(details) == 1:
        shape = tuple(details[0]["shape"])
        if len(shape) == 3 and shape[2] == anchors and shape[1] > 4:
            return "ultralytics", {ULTRALYTICS_OUTPUT: details[0]}
        if len(shape) == 3 and shape[2] == END2END_WIDTH and shape[1] <= anchors:
            return "ultralytics_end2end", {ULTRALYTICS_OUTPUT: details[0]}
    shapes = [tuple(detail["shape"]) for detail in details]
    if len(details) == 2 and all(len(shape) == 3 and shape[1] == anchors for shape in shapes):
        names, reg_max = (metadata or {}).get("names"), (metadata or {}).get("reg_max")
        if not names or not reg_max:
            raise ModelError(
                f"{path}: outputs {_describe(details)} carry no names (no serving_default signature) and the file "
                "has no embedded metadata with reg_max and names, so the box distribution cannot be told from the "
                "class logits. Convert the model again with this tfyolo."
            )
        widths = {BOX_OUTPUT: 4 * int(reg_max), CLASS_OUTPUT: len(names)}
        if widths[BOX_OUTPUT] == widths[CLASS_OUTPUT]:
            raise ModelError(
                f"{path}: both outputs are {widths[BOX_OUTPUT]} wide (reg_max {reg_max}, {len(names)} classes) and "
                "unnamed, so they cannot be told apart. Convert the model again with this tfyolo."
            )
        matched = {name: [d for d in details if d["shape"][2] == width] for name, width in widths.items()}
        if all(len(found) == 1 for found in matched.values()):
            return "tfyolo", {name: found[0] for name, found in matched.items()}
    raise ModelError(
        f"{path}: outputs {_describe(details)} are not a detector this tool understands; expected tfyolo's "
        f"(1, {anchors}, 4*reg_max) + (1, {anchors}, classes), Ultralytics' (1, 4 + classes, {anchors}) or its "
        f"end-to-end (1, 300, 6) for a {input_size}px input."
    )


def _integer_step(model_content, detail):
    """The step of the integer grid an output's values were carried on: its own scale when it is an integer tensor,
    else that of the integer tensor a DEQUANTIZE op turned into it (full-integer exports with float outputs); None
    when its values were float all along."""
    if np.issubdtype(np.dtype(detail["dtype"]), np.integer):
        return float(detail["quantization"][0]) or None
    _, ops, tensors = read_graph(model_content)
    for op in ops:
        if op["op_name"] == "DEQUANTIZE" and detail["index"] in op["outputs"]:
            source = tensors[op["inputs"][0]]
            if np.issubdtype(np.dtype(source["dtype"]), np.integer):
                return float(source["quantization"][0]) or None
    return None


def _refuse_shared_coarse_grid(model_content, detail, layout, path):
    """One ModelError when the single Ultralytics output holds boxes, scores (and class ids) on one integer grid too
    coarse for scores: such a file has no detections left to score, whatever the decoding."""
    step = _integer_step(model_content, detail)
    if step is None or step <= MAX_SHARED_SCORE_STEP:
        return
    shared = "boxes, scores and class ids" if layout == "ultralytics_end2end" else "boxes and scores"
    raise ModelError(
        f"{path}: its output {_describe([detail])[0][1]} carries {shared} on one integer grid of step {step:.3g}, so "
        f"scores (0-1) take only {int(1 / step) + 1} values and cannot rank detections; it cannot be scored. Use an "
        "export whose output stays float (Ultralytics' float or dynamic-range `_int8.tflite`) or its LiteRT int8 "
        "export (one-to-many, 0-1 boxes), or convert the float model with tfyolo."
    )


def _box_centres(output, layout):
    """Box centres of one image's Ultralytics output: (4 + nc, anchors) cx cy w h, or end-to-end (k, 6) rows x1 y1
    x2 y2 of positive width and height only (some end-to-end exports pad with all-zero rows, centred at 0)."""
    if layout == "ultralytics":
        return output[:2]
    rows = output[(output[:, 2] > output[:, 0]) & (output[:, 3] > output[:, 1])]
    return (rows[:, :2] + rows[:, 2:4]) / 2


@contextlib.contextmanager
def litert_refusals(where):
    """LiteRT's refusals of a malformed graph (its C++ checks surface as ValueError or RuntimeError: an invalid
    tensor index, an input without data, an op that failed to prepare or invoke) as one ModelError line."""
    try:
        yield
    except (ValueError, RuntimeError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelError(f"{where}: the LiteRT interpreter refused it ({first[:300]}).") from None


def _image_input(details, path):
    """(detail, channels_first): one RGB image input, NHWC (1, H, W, 3) or NCHW (1, 3, H, W), square."""
    shapes = [tuple(int(v) for v in detail["shape"]) for detail in details]
    if len(details) == 1 and len(shapes[0]) == 4 and 3 in (shapes[0][1], shapes[0][3]):
        shape = shapes[0]
        channels_first = shape[3] != 3
        height, width = (shape[2], shape[3]) if channels_first else (shape[1], shape[2])
        if height != width:
            raise ModelError(f"{path}: input {shape} is not square.")
        if not 0 < height <= MAX_INPUT_SIZE:  # a size read from the file: bounded as --imgsz is
            raise ModelError(f"{path}: input {shape} is not a size a model can take; expected 1 to {MAX_INPUT_SIZE}.")
        return details[0], channels_first
    raise ModelError(f"{path}: expected one image input, NHWC (1, H, W, 3) or NCHW (1, 3, H, W); found {shapes}.")


class TFLiteRunner:
    """Runs a .tflite detector through the LiteRT interpreter (`ai_edge_litert`), one image per invoke.

    Inputs are quantized and outputs dequantized from the interpreter's own tensor details, so float, int8,
    uint8 and int16 I/O models all take and give float; NCHW inputs (Ultralytics' LiteRT exports) are fed
    transposed. Outputs are matched by signature name, tensor name or the embedded metadata, never by order.

    Args:
        path: str or Path of the .tflite file (or `model_content` bytes).
        num_threads: int. Interpreter threads.
        layout: "auto", "tfyolo" or "ultralytics".
    """

    def __init__(self, path=None, num_threads=2, layout="auto", model_content=None):
        from tfyolo.metadata import read_embedded_metadata
        from tfyolo.tflite_runtime import make_interpreter

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
        self.metadata = read_embedded_metadata(model_content, self.description) or {}
        with litert_refusals(self.description):
            self._read_io(model_content, layout)

    def _read_io(self, model_content, layout):
        """The image input, the outputs' layout and what they hold (class count, box units, names)."""
        self.input_detail, self.channels_first = _image_input(self.interpreter.get_input_details(), self.description)
        self.input_size = int(self.input_detail["shape"][-1 if self.channels_first else 1])
        detected, outputs = _identify_outputs(
            self.interpreter, self.metadata, self.input_size, self.description, self.channels_first
        )
        if layout not in ("auto", *LAYOUTS):
            raise ModelError(f"--layout must be auto or one of {', '.join(LAYOUTS)}, received {layout!r}.")
        if layout != "auto" and layout != detected:
            raise ModelError(f"{self.description}: --layout {layout} was asked for, but its outputs are {detected}'s.")
        self.layout, self.outputs = detected, outputs
        self.reg_max, self.normalized_boxes = None, None
        # tfyolo's artifacts say how their head's outputs become detections; Ultralytics' one-to-many exports need
        # NMS and its end-to-end ones only the threshold (their top-k is in the graph).
        self.postprocess = self.metadata.get("postprocess", "nms") if detected == "tfyolo" else "nms"
        self.task, self.num_masks = task_of_outputs(outputs), 0
        if detected == "tfyolo":
            self.reg_max = int(outputs[BOX_OUTPUT]["shape"][2] // 4)
            self.num_classes = int(outputs[CLASS_OUTPUT]["shape"][2])
        else:
            self._read_ultralytics_output(model_content)
        self.names = _metadata_names(self.metadata, self.num_classes)

    def _read_ultralytics_output(self, model_content):
        """Class count, post-processing and box units of Ultralytics' single output, or one ModelError where the
        file cannot be scored meaningfully."""
        output = self.outputs[ULTRALYTICS_OUTPUT]
        _refuse_shared_coarse_grid(model_content, output, self.layout, self.description)
        if ULTRALYTICS_PROTOTYPES in self.outputs:
            # Ultralytics' segmentation export: its output0 rows end in one coefficient per prototype.
            shape = self.outputs[ULTRALYTICS_PROTOTYPES]["shape"]
            self.task, self.num_masks = SEGMENT, int(shape[1] if self.channels_first else shape[3])
        if self.layout == "ultralytics":
            self.num_classes = int(output["shape"][1] - 4 - self.num_masks)
        else:
            names = _metadata_names(self.metadata, len(self.metadata.get("names") or {}))
            if not names:
                raise ModelError(
                    f"{self.description}: an end-to-end (1, 300, 6) output, but no embedded class names to say how "
                    "many classes it scores; pass a file exported by Ultralytics with its metadata."
                )
            self.num_classes, self.postprocess = len(names), "topk"
        self.normalized_boxes = self._boxes_are_normalized()

    def _boxes_are_normalized(self):
        """Ultralytics' exports give boxes as fractions of the input (LiteRT one-to-many, legacy onnx2tf TFLite
        whose anchors are fractions, end-to-end ones included) or in pixels (SavedModel-derived, LiteRT end-to-end),
        and its metadata does not say which. One rule for both layouts: box centres follow the anchor grid whatever
        the image, so on a plain gray input their median is about half the input: 0.5 normalized, input/2 pixels."""
        gray = np.full((1, self.input_size, self.input_size, 3), PAD_VALUE / 255.0, np.float32)
        centres = _box_centres(self.predict_raw(gray)[ULTRALYTICS_OUTPUT][0], self.layout)
        if centres.size == 0:
            raise ModelError(
                f"{self.description}: its end-to-end output holds no box on a gray image, so whether its boxes are "
                "pixels or fractions of the input cannot be told."
            )
        return bool(np.median(centres) <= 2.0)

    def predict_raw(self, batch):
        if batch.shape[1:3] != (self.input_size, self.input_size):
            raise ModelError(
                f"{self.description}: takes {self.input_size}x{self.input_size} inputs, received "
                f"{batch.shape[1]}x{batch.shape[2]}."
            )
        collected = {name: [] for name in self.outputs}
        for image in batch:
            image = np.transpose(image, (2, 0, 1)) if self.channels_first else image
            with litert_refusals(self.description):
                self.interpreter.set_tensor(self.input_detail["index"], quantize(image[None], self.input_detail))
                self.interpreter.invoke()
                for name, detail in self.outputs.items():
                    collected[name].append(dequantize(self.interpreter.get_tensor(detail["index"]), detail))
        return {name: np.concatenate(values) for name, values in collected.items()}

    def decode(self, raw):
        if self.layout == "ultralytics":
            return decode_ultralytics(raw, self.input_size, self.normalized_boxes, self.num_masks)
        if self.layout == "ultralytics_end2end":
            return decode_ultralytics_end2end(raw, self.input_size, self.num_classes, self.normalized_boxes)
        return decode_tfyolo(raw, self.input_size, self.reg_max)

    def predict(self, batch):
        return self.decode(self.predict_raw(batch))

    def task_outputs(self, raw):
        """The outputs the model's task adds, under tfyolo's names and layouts (`tfyolo.models.tasks`)."""
        if self.layout == "tfyolo":
            return tfyolo_task_outputs(raw, self.task)
        return ultralytics_task_outputs(raw, self.num_masks, self.channels_first) if self.num_masks else {}


def _metadata_names(metadata, num_classes):
    """Class names from embedded metadata (Ultralytics writes {"0": name}, lists also occur), when they fit."""
    names = metadata.get("names")
    if isinstance(names, dict):
        names = [names.get(str(index), names.get(index)) for index in range(len(names))]
    if isinstance(names, list) and len(names) == num_classes and all(isinstance(n, str) for n in names):
        return names
    return None
