"""YOLO26 as data: the scales of Ultralytics' `cfg/models/26/yolo26.yaml`, its layer roles and its heads."""

from tfyolo.models.model_family import ModelFamily
from tfyolo.models.yolo11.yolo11_presets import C3K_SCALES, YOLO11

__all__ = ["C3K_SCALES", "YOLO26"]

YOLO26 = ModelFamily(
    name="yolo26",
    # yolo26.yaml's scales are yolo11.yaml's, and its layer names YOLO11's (head* holds both branches: head0_box1
    # one-to-many, head0_o2o_box1 one-to-one).
    scales=YOLO11.scales,
    sections=YOLO11.sections,
    # The yaml's `reg_max: 1`: each side of a box is one predicted distance, no distribution (no DFL).
    reg_max=1,
    # The yaml's `end2end: True`: the one-to-one head is the inference head; the one-to-many one is kept for
    # training and for NMS on request.
    heads=("one2one", "one2many"),
    ultralytics_yaml="cfg/models/26/yolo26.yaml",
    # ai-edge-quantizer's moving average inside the network, not the MSE-optimal range the DFL families take: on
    # coco_val150 the average lost 0.19 pt (mean of three calibration seeds) where MSE ranges capped at it lost 0.64
    # and uncapped ones 0.34; uncapped ones lost 3.4 pt on the PennFudan one-to-one head.
    int8_ranges="outputs_min_max",
    description="YOLO26: YOLO11's layout, residual linear SPPF, attention in the last neck block, DFL-free "
    "one-to-one (top-k, no NMS) and one-to-many heads",
)
