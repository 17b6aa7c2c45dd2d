"""Ultralytics YOLO11 detection files: the layout of `cfg/models/11/yolo11.yaml` onto `yolo11_detector`'s blocks."""

from tfyolo.importers.family_import import FamilyImport
from tfyolo.models.yolo11.yolo11_presets import C3K_SCALES

YOLO11_IMPORT = FamilyImport(
    family="yolo11",
    layout={
        0: ("Conv", "stem"),
        1: ("Conv", "down1"),
        2: ("C3k2", "stage1"),
        3: ("Conv", "down2"),
        4: ("C3k2", "stage2"),
        5: ("Conv", "down3"),
        6: ("C3k2", "stage3"),
        7: ("Conv", "down4"),
        8: ("C3k2", "stage4"),
        9: ("SPPF", "sppf"),
        10: ("C2PSA", "psa"),
        11: ("Upsample", None),
        12: ("Concat", None),
        13: ("C3k2", "neck_td4"),
        14: ("Upsample", None),
        15: ("Concat", None),
        16: ("C3k2", "neck_out3"),
        17: ("Conv", "neck_down3"),
        18: ("Concat", None),
        19: ("C3k2", "neck_out4"),
        20: ("Conv", "neck_down4"),
        21: ("Concat", None),
        22: ("C3k2", "neck_out5"),
        23: ("Detect", "head"),
    },
    marker="model.10.m.0.attn.qkv.conv.weight",
    # YOLO26's last neck block holds attention; YOLO11's never does.
    absent=("model.22.m.0.1.attn.qkv.conv.weight",),
    first_block_repeats=2,
    c3k_scales=C3K_SCALES,
)
