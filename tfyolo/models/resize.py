"""Rebuild a detector for another input size: convolution weights do not depend on it (attention's token count
does not enter its weights either)."""

from tfyolo.models.yolo_detector import build_yolo_detector


def resize_detector(model, config, input_size):
    """`model` (built from `config`, a ModelConfig) rebuilt at `input_size` with the same weights."""
    resized = build_yolo_detector(config.replace(input_size=input_size), name=model.name)
    resized.set_weights(model.get_weights())
    return resized
