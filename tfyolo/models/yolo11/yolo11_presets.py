"""YOLO11 as data: the scales of Ultralytics' `cfg/models/11/yolo11.yaml` and its layer roles."""

from tfyolo.models.model_family import ModelFamily, Scale

# Layer names of `yolo11_detector`: stem, down1-4, stage1-4, sppf and psa (C2PSA) are the backbone, neck_* the
# PAN-FPN, head* the decoupled head.
SECTIONS = (("head", "head"), ("neck_", "neck"), ("", "backbone"))
# parse_model turns every C3k2 into C3k2(c3k=True) for these scales.
C3K_SCALES = ("m", "l", "x")

YOLO11 = ModelFamily(
    name="yolo11",
    scales={
        "n": Scale(0.50, 0.25, 1024),
        "s": Scale(0.50, 0.50, 1024),
        "m": Scale(0.50, 1.00, 512),
        "l": Scale(1.00, 1.00, 512),
        "x": Scale(1.00, 1.50, 512),
    },
    sections=SECTIONS,
    ultralytics_yaml="cfg/models/11/yolo11.yaml",
    description="YOLO11: C3k2 blocks, SPPF + C2PSA attention, decoupled DFL head with a depthwise class branch",
)
