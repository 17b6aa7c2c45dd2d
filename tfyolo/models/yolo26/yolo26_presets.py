"""YOLO26 as data: the scales of Ultralytics' `cfg/models/26/yolo26.yaml`, its layer roles and its heads."""

from tfyolo.models.model_family import ModelFamily, Scale

# Layer names of `yolo26_detector`, as YOLO11's: stem, down1-4, stage1-4, sppf and psa are the backbone, neck_* the
# PAN-FPN, head* both branches of the head (head0_box1 one-to-many, head0_o2o_box1 one-to-one).
SECTIONS = (("head", "head"), ("neck_", "neck"), ("", "backbone"))
# parse_model turns every C3k2 into C3k2(c3k=True) for these scales, as for YOLO11.
C3K_SCALES = ("m", "l", "x")

YOLO26 = ModelFamily(
    name="yolo26",
    scales={
        "n": Scale(0.50, 0.25, 1024),
        "s": Scale(0.50, 0.50, 1024),
        "m": Scale(0.50, 1.00, 512),
        "l": Scale(1.00, 1.00, 512),
        "x": Scale(1.00, 1.50, 512),
    },
    sections=SECTIONS,
    # The yaml's `reg_max: 1`: each side of a box is one predicted distance, no distribution (no DFL).
    reg_max=1,
    # The yaml's `end2end: True`: the one-to-one head is the inference head; the one-to-many one is kept for
    # training and for NMS on request.
    heads=("one2one", "one2many"),
    ultralytics_yaml="cfg/models/26/yolo26.yaml",
    description="YOLO26: YOLO11's layout, residual linear SPPF, attention in the last neck block, DFL-free "
    "one-to-one (top-k, no NMS) and one-to-many heads",
)
