"""Ultralytics YOLOv8 detection files: the layout of `cfg/models/v8/yolov8.yaml` onto `yolov8_detector`'s blocks."""

from tfyolo.importers.family_import import FamilyImport

YOLOV8_IMPORT = FamilyImport(
    family="yolov8",
    layout={
        0: ("Conv", "stem"),
        1: ("Conv", "down1"),
        2: ("C2f", "stage1"),
        3: ("Conv", "down2"),
        4: ("C2f", "stage2"),
        5: ("Conv", "down3"),
        6: ("C2f", "stage3"),
        7: ("Conv", "down4"),
        8: ("C2f", "stage4"),
        9: ("SPPF", "sppf"),
        10: ("Upsample", None),
        11: ("Concat", None),
        12: ("C2f", "neck_td4"),
        13: ("Upsample", None),
        14: ("Concat", None),
        15: ("C2f", "neck_out3"),
        16: ("Conv", "neck_down3"),
        17: ("Concat", None),
        18: ("C2f", "neck_out4"),
        19: ("Conv", "neck_down4"),
        20: ("Concat", None),
        21: ("C2f", "neck_out5"),
        22: ("Detect", "head"),
    },
    marker="model.22.cv3.0.2.weight",
    first_block_repeats=3,
)
