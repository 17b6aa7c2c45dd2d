"""YOLO26 (Ultralytics' `cfg/models/26/yolo26.yaml`) as one flat functional Keras model: YOLO11's layout
(`tfyolo.models.yolo11.yolo11_detector.yolo11_body`) with the rows yolo26.yaml changes, and its DFL-free head."""

from tfyolo.compat import keras
from tfyolo.models.task_heads import task_heads
from tfyolo.models.yolo11.yolo11_detector import yolo11_body

# SPPF(1024, 5, 3, True): cv1 without activation, the input added to the output.
SPPF_OPTIONS = {"linear_cv1": True, "shortcut": True}
# Neck rows before the scale applies, (channels, repeats, c3k, attention): every C3k2 is a C3k one, and the P5
# output, C3k2(1024, True, 0.5, True), runs once, its inner block a Bottleneck then a PSABlock.
NECK_C3K2 = {
    "td4": (512, 2, True, False),
    "out3": (256, 2, True, False),
    "out4": (512, 2, True, False),
    "out5": (1024, 1, True, True),
}


def build_yolo26_detector(config, name="yolo_detector"):
    """The YOLO26 detector for `config` (family "yolo26"), uncompiled; outputs as `tfyolo.models.detect_head`:
    the head `config.head` names, or both heads."""
    images, features = yolo11_body(config, sppf_options=SPPF_OPTIONS, neck_c3k2=NECK_C3K2)
    # === Functional Model: DFL-free head, one branch or both ===
    return keras.Model(images, task_heads(features, config, class_branch="depthwise", proto_fusion=True), name=name)
