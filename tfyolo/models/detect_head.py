"""The decoupled detection head every family shares (Ultralytics' `Detect`): per level a box branch and a class
branch, each two 3x3 blocks and a 1x1 prediction, flattened and concatenated over the levels into two outputs."""

import math

from tfyolo.compat import keras
from tfyolo.models.blocks import conv_bn_act

layers = keras.layers

BOX_OUTPUT = "box_distribution"
CLASS_OUTPUT = "class_logits"
# How the class branch's two blocks are made: YOLOv8's two 3x3 convolutions, or YOLO11's depthwise-separable pairs
# (a 3x3 depthwise, then a 1x1 convolution), Ultralytics' `legacy=False`.
CLASS_BRANCHES = ("conv", "depthwise")
# The head's layers that make each output, as layer-name patterns (fnmatch): every level's final 1x1 prediction
# and the concatenation over the levels. Recipes name them to give an output its own precision.
OUTPUT_LAYERS = {
    BOX_OUTPUT: ("head*_box_pred", BOX_OUTPUT),
    CLASS_OUTPUT: ("head*_cls_pred", CLASS_OUTPUT),
}


def _class_block(x, filters, activation, name, branch):
    if branch == "conv":
        return conv_bn_act(x, filters, 3, 1, activation, name)
    x = conv_bn_act(x, int(x.shape[-1]), 3, 1, activation, f"{name}_dw", depthwise=True)
    return conv_bn_act(x, filters, 1, 1, activation, f"{name}_pw")


def detect_head(features, config, class_branch="conv"):
    """The head over `features` (P3, P4, P5); returns {BOX_OUTPUT: ..., CLASS_OUTPUT: ...}.

    Outputs, kept as two tensors on purpose (a shared int8 scale for box logits and class logits would crush the
    scores once quantized):
        box_distribution: (batch, anchors, 4 * reg_max) logits of the distance distributions, in anchor order
            stride 8, 16, 32 and row-major within a level (see `tfyolo.ops.anchors`).
        class_logits: (batch, anchors, num_classes) logits before the sigmoid.
    """
    if class_branch not in CLASS_BRANCHES:
        raise ValueError(f"class_branch must be one of {CLASS_BRANCHES}, received {class_branch!r}.")
    activation, reg_max, num_classes = config.activation, config.reg_max, config.num_classes
    p3_channels = int(features[0].shape[-1])
    box_channels = max(16, p3_channels // 4, 4 * reg_max)
    class_channels = max(p3_channels, min(num_classes, 100))
    box_levels, class_levels = [], []
    for level, (feature, stride) in enumerate(zip(features, config.strides)):
        cells = (config.input_size // stride) ** 2
        box = conv_bn_act(feature, box_channels, 3, 1, activation, f"head{level}_box1")
        box = conv_bn_act(box, box_channels, 3, 1, activation, f"head{level}_box2")
        # Bias 1.0 as YOLOv8: every bin starts equally likely, so early boxes are not degenerate.
        box = layers.Conv2D(
            4 * reg_max, 1, bias_initializer=keras.initializers.Constant(1.0), name=f"head{level}_box_pred"
        )(box)
        box_levels.append(layers.Reshape((cells, 4 * reg_max), name=f"head{level}_box_flat")(box))

        cls = _class_block(feature, class_channels, activation, f"head{level}_cls1", class_branch)
        cls = _class_block(cls, class_channels, activation, f"head{level}_cls2", class_branch)
        # Ultralytics' prior: about 5 objects per image spread over the level's cells and classes.
        prior = math.log(5 / num_classes / (config.input_size / stride) ** 2)
        cls = layers.Conv2D(
            num_classes, 1, bias_initializer=keras.initializers.Constant(prior), name=f"head{level}_cls_pred"
        )(cls)
        class_levels.append(layers.Reshape((cells, num_classes), name=f"head{level}_cls_flat")(cls))

    return {
        BOX_OUTPUT: layers.Concatenate(axis=1, name=BOX_OUTPUT)(box_levels),
        CLASS_OUTPUT: layers.Concatenate(axis=1, name=CLASS_OUTPUT)(class_levels),
    }
