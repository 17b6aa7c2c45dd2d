"""Rebuild a detector for another input size: convolution weights do not depend on it."""

from tfyolo.config import ModelConfig
from tfyolo.models.yolo_detector import CLASS_OUTPUT, build_yolo_detector


def infer_model_config(model):
    """The ModelConfig of a tfyolo detector, read off its layers."""
    activation_layer = model.get_layer("stem_act")
    kind = type(activation_layer).__name__
    if kind == "HardSwish":
        activation = "hard_swish"
    elif kind == "ReLU":
        activation = "relu6" if activation_layer.max_value else "relu"
    else:
        activation = "silu"
    stem_filters = model.get_layer("stem_conv").filters
    scale = {16: "n", 32: "s", 48: "m"}[stem_filters]
    reg_max = model.get_layer("head0_box_pred").filters // 4
    return ModelConfig(
        num_classes=int(model.output_shape[CLASS_OUTPUT][-1]),
        scale=scale,
        activation=activation,
        input_size=int(model.input_shape[1]),
        reg_max=reg_max,
        padding="symmetric" if any(layer.name == "stem_pad" for layer in model.layers) else "same",
    )


def resize_detector(model, input_size):
    config = infer_model_config(model).replace(input_size=input_size)
    resized = build_yolo_detector(config, name=model.name)
    resized.set_weights(model.get_weights())
    return resized
