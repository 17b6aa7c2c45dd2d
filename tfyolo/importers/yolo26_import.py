"""Ultralytics YOLO26 detection files: the layout of `cfg/models/26/yolo26.yaml` onto `yolo26_detector`'s blocks.

Its module list is YOLO11's, index for index; what tells it apart is the attention inside the last neck block
(`model.22.m.0.1`, a Bottleneck then a PSABlock), present in checkpoints and in both of its ONNX exports."""

from tfyolo.importers.family_import import FamilyImport
from tfyolo.importers.yolo11_import import YOLO11_IMPORT
from tfyolo.models.yolo26.yolo26_presets import C3K_SCALES

LAST_NECK_ATTENTION = "model.22.m.0.1.attn.qkv.conv.weight"

YOLO26_IMPORT = FamilyImport(
    family="yolo26",
    layout=YOLO11_IMPORT.layout,
    marker=LAST_NECK_ATTENTION,
    first_block_repeats=2,
    c3k_scales=C3K_SCALES,
)
