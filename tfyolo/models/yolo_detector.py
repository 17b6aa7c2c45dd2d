"""The detector of any family, from its `ModelConfig`: one flat functional Keras model with two outputs."""

from tfyolo.models.detect_head import BOX_OUTPUT, CLASS_OUTPUT
from tfyolo.models.yolo11.yolo11_detector import build_yolo11_detector
from tfyolo.models.yolo26.yolo26_detector import build_yolo26_detector
from tfyolo.models.yolov8.yolov8_detector import build_yolov8_detector

__all__ = ["BOX_OUTPUT", "CLASS_OUTPUT", "BUILDERS", "build_yolo_detector"]

# family name -> builder; the family's data (scales, layer roles) is `tfyolo.models.families.FAMILIES`.
BUILDERS = {"yolov8": build_yolov8_detector, "yolo11": build_yolo11_detector, "yolo26": build_yolo26_detector}


def build_yolo_detector(config, name="yolo_detector"):
    """Builds the detector for `config` (`tfyolo.models.model_config.ModelConfig`); returns an uncompiled
    `keras.Model` with outputs `box_distribution` (batch, anchors, 4 * reg_max) and `class_logits` (batch, anchors,
    num_classes) of its inference head (a model with both of YOLO26's heads adds `ONE2ONE_OUTPUTS`)."""
    return BUILDERS[config.family](config, name=name)
