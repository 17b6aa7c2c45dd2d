"""The model families tfyolo builds, imports and quantizes, by name. Data only (no TensorFlow): the builders are
dispatched by `tfyolo.models.yolo_detector.build_yolo_detector`."""

from tfyolo.errors import ConfigError
from tfyolo.models.yolo11.yolo11_presets import YOLO11
from tfyolo.models.yolo26.yolo26_presets import YOLO26
from tfyolo.models.yolov8.yolov8_presets import YOLOV8

FAMILIES = {family.name: family for family in (YOLOV8, YOLO11, YOLO26)}
# A model saved before families existed (its metadata names none) is a YOLOv8.
LEGACY_FAMILY = "yolov8"


def model_family(name):
    # A name read from a file's metadata may be any JSON value: a list is not a family (nor a hashable key).
    if not isinstance(name, str) or name not in FAMILIES:
        raise ConfigError(f"family must be one of {sorted(FAMILIES)}, received {name!r}.")
    return FAMILIES[name]
