"""The decoupled detection head every family shares (Ultralytics' `Detect`): per level a box branch and a class
branch, each two 3x3 blocks and a 1x1 prediction, flattened and concatenated over the levels into two outputs."""

import math

from tfyolo.compat import keras
from tfyolo.models.blocks import conv_bn_act
from tfyolo.models.model_family import ALL_HEADS

layers = keras.layers

BOX_OUTPUT = "box_distribution"
CLASS_OUTPUT = "class_logits"
# A model with both of YOLO26's heads ("both", for training) names the one-to-one head's outputs these; the
# one-to-many head keeps BOX_OUTPUT / CLASS_OUTPUT.
ONE2ONE_OUTPUTS = {BOX_OUTPUT: "one2one_box_distribution", CLASS_OUTPUT: "one2one_class_logits"}
# Layer names of each head's branches, by level: `head0_box1` (one-to-many), `head0_o2o_box1` (one-to-one).
BRANCH_INFIX = {"one2many": "", "one2one": "_o2o"}
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


def detect_head(features, config, class_branch="conv", head="one2many", output_names=None):
    """The head over `features` (P3, P4, P5); returns {BOX_OUTPUT: ..., CLASS_OUTPUT: ...}.

    head: which of Ultralytics' branches ("one2many" `cv2`/`cv3`, "one2one" `one2one_cv2`/`one2one_cv3`: the same
    shapes, its own weights); it names the layers (`BRANCH_INFIX`). output_names: {BOX_OUTPUT: name, CLASS_OUTPUT:
    name} of the two concatenations (default: BOX_OUTPUT, CLASS_OUTPUT).

    Outputs, kept as two tensors on purpose (a shared int8 scale for box logits and class logits would crush the
    scores once quantized):
        box_distribution: (batch, anchors, 4 * reg_max) logits of the distance distributions, in anchor order
            stride 8, 16, 32 and row-major within a level (see `tfyolo.ops.anchors`); with reg_max 1 (YOLO26)
            the left, top, right, bottom distances themselves, in grid cells.
        class_logits: (batch, anchors, num_classes) logits before the sigmoid.
    """
    if class_branch not in CLASS_BRANCHES:
        raise ValueError(f"class_branch must be one of {CLASS_BRANCHES}, received {class_branch!r}.")
    activation, reg_max, num_classes = config.activation, config.reg_max, config.num_classes
    output_names = output_names or {BOX_OUTPUT: BOX_OUTPUT, CLASS_OUTPUT: CLASS_OUTPUT}
    infix = BRANCH_INFIX[head]
    # Bias 1.0 as YOLOv8: every bin starts equally likely, so early boxes are not degenerate. Plain distances
    # (reg_max 1) start at 2 cells, Ultralytics' 8.4 initialisation.
    box_bias = 2.0 if reg_max == 1 else 1.0
    p3_channels = int(features[0].shape[-1])
    box_channels = max(16, p3_channels // 4, 4 * reg_max)
    class_channels = max(p3_channels, min(num_classes, 100))
    box_levels, class_levels = [], []
    for level, (feature, stride) in enumerate(zip(features, config.strides)):
        cells = (config.input_size // stride) ** 2
        prefix = f"head{level}{infix}"
        box = conv_bn_act(feature, box_channels, 3, 1, activation, f"{prefix}_box1")
        box = conv_bn_act(box, box_channels, 3, 1, activation, f"{prefix}_box2")
        box = layers.Conv2D(
            4 * reg_max, 1, bias_initializer=keras.initializers.Constant(box_bias), name=f"{prefix}_box_pred"
        )(box)
        box_levels.append(layers.Reshape((cells, 4 * reg_max), name=f"{prefix}_box_flat")(box))

        cls = _class_block(feature, class_channels, activation, f"{prefix}_cls1", class_branch)
        cls = _class_block(cls, class_channels, activation, f"{prefix}_cls2", class_branch)
        # Ultralytics' prior: about 5 objects per image spread over the level's cells and classes.
        prior = math.log(5 / num_classes / (config.input_size / stride) ** 2)
        cls = layers.Conv2D(
            num_classes, 1, bias_initializer=keras.initializers.Constant(prior), name=f"{prefix}_cls_pred"
        )(cls)
        class_levels.append(layers.Reshape((cells, num_classes), name=f"{prefix}_cls_flat")(cls))

    return {
        BOX_OUTPUT: layers.Concatenate(axis=1, name=output_names[BOX_OUTPUT])(box_levels),
        CLASS_OUTPUT: layers.Concatenate(axis=1, name=output_names[CLASS_OUTPUT])(class_levels),
    }


def detect_heads(features, config, class_branch):
    """The outputs of `config.head`: one head's two, or for "both" the one-to-many head's under BOX_OUTPUT /
    CLASS_OUTPUT and the one-to-one head's under `ONE2ONE_OUTPUTS` (Ultralytics feeds both the same features)."""
    if config.head != ALL_HEADS:
        return detect_head(features, config, class_branch, config.head)
    outputs = detect_head(features, config, class_branch, "one2many")
    one2one = detect_head(features, config, class_branch, "one2one", ONE2ONE_OUTPUTS)
    return {**outputs, **{ONE2ONE_OUTPUTS[key]: tensor for key, tensor in one2one.items()}}


def branch_layers(model, head):
    """The layers of `model` that belong to `head`'s branches only (for a model holding both of YOLO26's heads,
    `head0_o2o_box1` ... for "one2one"); none for a head whose layers carry no infix (the one-to-many head shares
    its names' shape with every other family's single head, so it is never told apart this way)."""
    infix = BRANCH_INFIX[head]
    # A QAT model wraps each layer (tfmot's `quant_<name>`); the wrapped layer keeps the builder's name.
    names = {layer: getattr(layer, "layer", layer).name for layer in model.layers}
    return [layer for layer, name in names.items() if infix and name.startswith("head") and f"{infix}_" in name]
