"""YOLOv8 as data: the scales of Ultralytics' `cfg/models/v8/yolov8.yaml` and its layer roles."""

from tfyolo.models.model_family import ModelFamily, Scale

# Layer names of `yolov8_detector`: stem, down1-4, stage1-4 and sppf are the backbone, neck_* the PAN-FPN, head*
# the decoupled head.
SECTIONS = (("head", "head"), ("neck_", "neck"), ("", "backbone"))

YOLOV8 = ModelFamily(
    name="yolov8",
    scales={
        "n": Scale(0.33, 0.25, 1024),
        "s": Scale(0.33, 0.50, 1024),
        "m": Scale(0.67, 0.75, 768),
        "l": Scale(1.00, 1.00, 512),
        "x": Scale(1.00, 1.25, 512),
    },
    sections=SECTIONS,
    ultralytics_yaml="cfg/models/v8/yolov8.yaml",
    description="YOLOv8: C2f backbone and neck, SPPF, decoupled DFL head",
)
