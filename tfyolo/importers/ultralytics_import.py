"""Ultralytics YOLOv8 detection checkpoints -> a tfyolo detector with the same weights, computing the same thing.

The Keras graph is tfyolo's own (flat, plain layers, so tfmot can wrap it), built with PyTorch's symmetric padding
for the strided convolutions. Every module of the checkpoint is mapped by its index to tfyolo's layer names;
C2f's single `cv1` (2 * hidden output channels, chunked in two) fills the two parallel 1x1 convolutions with
output channels [0, hidden) and [hidden, 2 * hidden). Nothing is saved unless every Keras variable was filled and
every source tensor was used (the fixed DFL projection, 0..15, is arithmetic in tfyolo's decode).
"""

import numpy as np

from tfyolo.config import ModelConfig
from tfyolo.errors import ModelError
from tfyolo.importers.ultralytics_checkpoint import read_checkpoint
from tfyolo.models.blocks import BATCH_NORM_EPSILON
from tfyolo.models.yolo_detector import build_yolo_detector

# YOLOv8 detection: module index -> (Ultralytics type, tfyolo block name). Concat and Upsample carry no weights.
V8_LAYOUT = {
    0: ("conv.Conv", "stem"),
    1: ("conv.Conv", "down1"),
    2: ("block.C2f", "stage1"),
    3: ("conv.Conv", "down2"),
    4: ("block.C2f", "stage2"),
    5: ("conv.Conv", "down3"),
    6: ("block.C2f", "stage3"),
    7: ("conv.Conv", "down4"),
    8: ("block.C2f", "stage4"),
    9: ("block.SPPF", "sppf"),
    10: ("torch.nn.modules.upsampling.Upsample", None),
    11: ("conv.Concat", None),
    12: ("block.C2f", "neck_td4"),
    13: ("torch.nn.modules.upsampling.Upsample", None),
    14: ("conv.Concat", None),
    15: ("block.C2f", "neck_out3"),
    16: ("conv.Conv", "neck_down3"),
    17: ("conv.Concat", None),
    18: ("block.C2f", "neck_out4"),
    19: ("conv.Conv", "neck_down4"),
    20: ("conv.Concat", None),
    21: ("block.C2f", "neck_out5"),
    22: ("head.Detect", "head"),
}
STEM_CHANNELS_TO_SCALE = {16: "n", 32: "s", 48: "m"}
IGNORED = ("num_batches_tracked",)
FIXED = ("model.22.dfl.conv.weight",)  # the DFL projection 0..15, not a learned weight


def _short_type(record_type):
    return record_type.replace("ultralytics.nn.modules.", "")


class WeightFiller:
    """Assigns source tensors to Keras layers, remembering what was used and what was filled."""

    def __init__(self, model, state, source, fused=False):
        self.model, self.state, self.source, self.fused = model, state, source, fused
        self.used, self.filled = set(), set()

    def take(self, name):
        if name not in self.state:
            raise ModelError(f"{self.source}: tensor {name} is missing; not a YOLOv8 detection checkpoint.")
        self.used.add(name)
        return self.state[name].astype(np.float32)

    def conv_bn(self, source_prefix, layer_name, channels=slice(None)):
        """A Conv (conv + bn) module, or `channels` of its outputs, into `{layer_name}_conv` / `_bn`."""
        kernel = self.take(f"{source_prefix}.conv.weight")[channels]  # OIHW
        if self.fused:
            # An export folded BatchNorm into the convolution (kernel and bias): the Keras BatchNormalization
            # becomes x + bias exactly (gamma 1, mean 0, variance 1 - epsilon), and QAT folds it back in.
            bias = self.take(f"{source_prefix}.conv.bias")[channels]
            ones = np.ones_like(bias)
            batch_norm = [ones, bias, np.zeros_like(bias), ones - BATCH_NORM_EPSILON]
        else:
            batch_norm = [
                self.take(f"{source_prefix}.bn.{key}")[channels]
                for key in ("weight", "bias", "running_mean", "running_var")
            ]
        self.assign(f"{layer_name}_conv", [np.transpose(kernel, (2, 3, 1, 0))])
        self.assign(f"{layer_name}_bn", batch_norm)

    def conv_with_bias(self, source_prefix, layer_name):
        kernel = self.take(f"{source_prefix}.weight")
        self.assign(layer_name, [np.transpose(kernel, (2, 3, 1, 0)), self.take(f"{source_prefix}.bias")])

    def assign(self, layer_name, values):
        layer = self.model.get_layer(layer_name)
        expected = [tuple(weight.shape) for weight in layer.get_weights()]
        if [tuple(value.shape) for value in values] != expected:
            raise ModelError(
                f"{self.source}: {layer_name} takes weights {expected}, the checkpoint gives "
                f"{[tuple(value.shape) for value in values]}."
            )
        layer.set_weights(values)
        self.filled.add(layer_name)

    def check_complete(self):
        for name in FIXED:
            if name in self.state and not np.array_equal(self.state[name].reshape(-1), np.arange(16)):
                raise ModelError(f"{self.source}: {name} is not the fixed projection 0..15 that tfyolo's decode uses.")
        unfilled = [layer.name for layer in self.model.layers if layer.weights and layer.name not in self.filled]
        unused = sorted(set(self.state) - self.used - set(FIXED) - {k for k in self.state if k.endswith(IGNORED)})
        if unfilled or unused:
            raise ModelError(
                f"{self.source}: incomplete import, refused: Keras layers left unfilled {unfilled[:8]}, source "
                f"tensors left unused {unused[:8]}. A partly random model would only show up later as bad "
                "predictions."
            )


def _fill_c2f(filler, prefix, name, hidden, repeats):
    filler.conv_bn(f"{prefix}.cv1", f"{name}_cv1a", slice(0, hidden))
    filler.conv_bn(f"{prefix}.cv1", f"{name}_cv1b", slice(hidden, 2 * hidden))
    for index in range(repeats):
        filler.conv_bn(f"{prefix}.m.{index}.cv1", f"{name}_m{index}_cv1")
        filler.conv_bn(f"{prefix}.m.{index}.cv2", f"{name}_m{index}_cv2")
    filler.conv_bn(f"{prefix}.cv2", f"{name}_cv2")


def _check_layout(layers, source):
    types = {int(index): _short_type(record.type_name) for index, record in layers.items()}
    for index, record_type in types.items():
        expected = V8_LAYOUT.get(index, (None,))[0]
        if expected is None or not record_type.endswith(expected):
            found = sorted(set(types.values()))
            raise ModelError(
                f"{source}: module {index} is {record_type}; supported are Ultralytics YOLOv8 detection models "
                f"(Conv, C2f, SPPF, Detect). This checkpoint holds {found} (YOLOv5, YOLO11's C3k2/C2PSA, "
                "segmentation and pose heads are not supported)."
            )
    if len(types) != len(V8_LAYOUT):
        raise ModelError(f"{source}: {len(types)} modules; a YOLOv8 detection model has {len(V8_LAYOUT)}.")


def import_weights(path, input_size=None):
    """Imports an Ultralytics YOLOv8 detector from its `.pt` checkpoint or its `.onnx` export; returns (Keras
    detector, metadata dict with names, imgsz and the source's sha256)."""
    import hashlib
    from pathlib import Path

    path = Path(path)
    readers = {".pt": _from_checkpoint, ".onnx": _from_onnx}
    if path.suffix not in readers:
        raise ModelError(f"{path}: expected an Ultralytics .pt checkpoint or .onnx export, received {path.suffix!r}.")
    source = readers[path.suffix](path)
    imgsz = int(input_size or source["imgsz"] or 640)
    state = source["state"]
    stem_channels = state["model.0.conv.weight"].shape[0]
    if stem_channels not in STEM_CHANNELS_TO_SCALE:
        raise ModelError(f"{path}: stem with {stem_channels} channels; supported scales are n, s and m (16/32/48).")
    if "model.22.cv3.0.2.weight" not in state:
        raise ModelError(f"{path}: no YOLOv8 Detect head (model.22.cv3); not a detection model tfyolo can import.")
    num_classes = int(state["model.22.cv3.0.2.weight"].shape[0])
    names = source["names"] or [f"class{index}" for index in range(num_classes)]
    config = ModelConfig(
        num_classes=num_classes,
        scale=STEM_CHANNELS_TO_SCALE[stem_channels],
        input_size=imgsz,
        padding="symmetric",
    )
    model = build_yolo_detector(config)
    filler = WeightFiller(model, state, path, fused=source["fused"])
    for index, (kind, name) in V8_LAYOUT.items():
        prefix = f"model.{index}"
        if name is None:
            continue
        if kind == "head.Detect":
            for level in range(3):
                for branch, output in (("cv2", "box"), ("cv3", "cls")):
                    filler.conv_bn(f"{prefix}.{branch}.{level}.0", f"head{level}_{output}1")
                    filler.conv_bn(f"{prefix}.{branch}.{level}.1", f"head{level}_{output}2")
                    filler.conv_with_bias(f"{prefix}.{branch}.{level}.2", f"head{level}_{output}_pred")
        elif kind == "block.SPPF":
            filler.conv_bn(f"{prefix}.cv1", f"{name}_cv1")
            filler.conv_bn(f"{prefix}.cv2", f"{name}_cv2")
        elif kind == "block.C2f":
            hidden = state[f"{prefix}.cv1.conv.weight"].shape[0] // 2
            repeats = len({key.split(".")[3] for key in state if key.startswith(f"{prefix}.m.")})
            _fill_c2f(filler, prefix, name, hidden, repeats)
        else:
            filler.conv_bn(prefix, name)
    filler.check_complete()
    metadata = {
        "names": [str(name) for name in names],
        "imgsz": imgsz,
        "reg_max": config.reg_max,
        "model_config": config.to_dict(),
        "source": {
            "path": str(path),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "format": {".pt": "ultralytics checkpoint", ".onnx": "ultralytics onnx export"}[path.suffix],
        },
        "ultralytics_version": source["version"],
    }
    return model, metadata


def _from_checkpoint(path):
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict) or not (checkpoint.get("ema") or checkpoint.get("model")):
        raise ModelError(f"{path}: holds no model (expected an Ultralytics checkpoint dict with 'model' or 'ema').")
    record = checkpoint.get("ema") or checkpoint["model"]  # EMA weights are the ones Ultralytics validates
    if not getattr(record, "type_name", "").endswith("DetectionModel"):
        found = getattr(record, "type_name", type(record).__name__)
        raise ModelError(f"{path}: holds a {found}, not a detection model.")
    layers = record.children().get("model")
    if layers is None:
        raise ModelError(f"{path}: its model has no layer list.")
    layers = layers.children()
    _check_layout(layers, path)
    activation = layers["0"].children().get("act")
    if getattr(activation, "type_name", "") != "torch.nn.modules.activation.SiLU":
        raise ModelError(f"{path}: activation {getattr(activation, 'type_name', activation)}; only SiLU is supported.")
    names = record.names
    names = list(names) if isinstance(names, (list, tuple)) else [names[index] for index in range(len(names))]
    imgsz = (checkpoint.get("train_args") or {}).get("imgsz")
    return {
        "state": record.state_dict(),
        "fused": False,
        "names": names,
        "imgsz": imgsz[0] if isinstance(imgsz, (list, tuple)) else imgsz,
        "version": checkpoint.get("version"),
    }


def _from_onnx(path):
    """An Ultralytics ONNX export: initializers keep the module names (`model.2.cv1.conv.weight`), BatchNorm is
    folded into each convolution's bias, and the class names and imgsz are in the metadata properties."""
    import ast

    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ModelError(f"{path}: importing ONNX needs the onnx package.")
    try:
        graph_model = onnx.load(str(path))
    except Exception as error:  # onnx raises protobuf's DecodeError, ValueError or its own errors for a bad file
        raise ModelError(f"{path}: not a readable ONNX model ({type(error).__name__}: {error}).")
    properties = {prop.key: prop.value for prop in graph_model.metadata_props}
    if properties.get("task", "detect") != "detect":
        raise ModelError(f"{path}: an Ultralytics {properties['task']} model; only detection is supported.")
    # Weights keep their module names; the other initializers are graph constants (anchor grids, shapes).
    state = {
        item.name: numpy_helper.to_array(item)
        for item in graph_model.graph.initializer
        if item.name.startswith("model.")
    }
    if "model.0.conv.weight" not in state:
        raise ModelError(f"{path}: no Ultralytics module names among its initializers; not an Ultralytics export.")
    names = ast.literal_eval(properties["names"]) if "names" in properties else None
    if isinstance(names, dict):
        names = [names[index] for index in range(len(names))]
    imgsz = ast.literal_eval(properties["imgsz"]) if "imgsz" in properties else None
    return {
        "state": state,
        "fused": True,
        "names": names,
        "imgsz": imgsz[0] if isinstance(imgsz, (list, tuple)) else imgsz,
        "version": properties.get("version"),
    }
