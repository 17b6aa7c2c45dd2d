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

    def __init__(self, model, state, source):
        self.model, self.state, self.source = model, state, source
        self.used, self.filled = set(), set()

    def take(self, name):
        if name not in self.state:
            raise ModelError(f"{self.source}: tensor {name} is missing; not a YOLOv8 detection checkpoint.")
        self.used.add(name)
        return self.state[name].astype(np.float32)

    def conv_bn(self, source_prefix, layer_name, channels=slice(None)):
        """A Conv (conv + bn) module, or `channels` of its outputs, into `{layer_name}_conv` / `_bn`."""
        kernel = self.take(f"{source_prefix}.conv.weight")[channels]  # OIHW
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


def import_checkpoint(path, input_size=None):
    """Reads an Ultralytics YOLOv8 `.pt`; returns (Keras detector, metadata dict with names, imgsz, source sha256)."""
    import hashlib
    from pathlib import Path

    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict) or not (checkpoint.get("ema") or checkpoint.get("model")):
        raise ModelError(f"{path}: holds no model (expected an Ultralytics checkpoint dict with 'model' or 'ema').")
    record = checkpoint.get("ema") or checkpoint["model"]  # EMA weights are the ones Ultralytics validates
    if not getattr(record, "type_name", "").endswith("DetectionModel"):
        raise ModelError(
            f"{path}: holds a {getattr(record, 'type_name', type(record).__name__)}, not a detection model."
        )
    layers = record.children().get("model", None)
    if layers is None:
        raise ModelError(f"{path}: its model has no layer list.")
    layers = layers.children()
    _check_layout(layers, path)
    state = record.state_dict()
    stem_channels = state["model.0.conv.weight"].shape[0]
    if stem_channels not in STEM_CHANNELS_TO_SCALE:
        raise ModelError(f"{path}: stem with {stem_channels} channels; supported scales are n, s and m (16/32/48).")
    activation = layers["0"].children().get("act")
    if getattr(activation, "type_name", "") != "torch.nn.modules.activation.SiLU":
        raise ModelError(f"{path}: activation {getattr(activation, 'type_name', activation)}; only SiLU is supported.")
    names = (
        record.names if isinstance(record.names, (list, tuple)) else [record.names[i] for i in range(len(record.names))]
    )
    train_args = checkpoint.get("train_args") or {}
    imgsz = input_size or train_args.get("imgsz") or 640
    imgsz = int(imgsz[0] if isinstance(imgsz, (list, tuple)) else imgsz)
    config = ModelConfig(
        num_classes=int(record.nc),
        scale=STEM_CHANNELS_TO_SCALE[stem_channels],
        input_size=imgsz,
        reg_max=int(getattr(layers["22"], "reg_max", 16)),
        padding="symmetric",
    )
    model = build_yolo_detector(config)
    filler = WeightFiller(model, state, path)
    for index, (_, name) in V8_LAYOUT.items():
        prefix = f"model.{index}"
        if name is None:
            continue
        if index == 22:
            for level in range(3):
                for branch, kind in (("cv2", "box"), ("cv3", "cls")):
                    filler.conv_bn(f"{prefix}.{branch}.{level}.0", f"head{level}_{kind}1")
                    filler.conv_bn(f"{prefix}.{branch}.{level}.1", f"head{level}_{kind}2")
                    filler.conv_with_bias(f"{prefix}.{branch}.{level}.2", f"head{level}_{kind}_pred")
        elif name == "sppf":
            filler.conv_bn(f"{prefix}.cv1", "sppf_cv1")
            filler.conv_bn(f"{prefix}.cv2", "sppf_cv2")
        elif _short_type(layers[str(index)].type_name) == "block.C2f":
            hidden = state[f"{prefix}.cv1.conv.weight"].shape[0] // 2
            repeats = len(layers[str(index)].children()["m"].children())
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
            "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
            "format": "ultralytics .pt",
        },
        "ultralytics_version": checkpoint.get("version"),
    }
    return model, metadata
