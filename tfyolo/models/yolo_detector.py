"""The YOLOv8-style detector as one flat functional Keras model."""

import math

from tfyolo.compat import keras
from tfyolo.config import SCALES, ModelConfig
from tfyolo.models.blocks import c2f, conv_bn_act, sppf

layers = keras.layers

BOX_OUTPUT = "box_distribution"
CLASS_OUTPUT = "class_logits"

# YOLOv8 backbone/neck channels and C2f repeats before the scale's width/depth multiples apply.
BASE_CHANNELS = (64, 128, 256, 512, 1024)
BASE_REPEATS = (3, 6, 6, 3)
NECK_REPEATS = 3


def scaled_channels(channels, scale):
    _, width, max_channels = SCALES[scale]
    # Rounded up to a multiple of 8, as Ultralytics' make_divisible.
    return int(math.ceil(min(channels, max_channels) * width / 8) * 8)


def scaled_repeats(repeats, scale):
    depth, _, _ = SCALES[scale]
    return max(round(repeats * depth), 1)


def build_yolo_detector(config: ModelConfig, name="yolo_detector"):
    """Builds the detector for `config` and returns an uncompiled `keras.Model`.

    Outputs, kept as two tensors on purpose (a shared int8 scale for box logits and class logits would crush the
    scores once quantized):
        box_distribution: (batch, anchors, 4 * reg_max) logits of the distance distributions, in anchor order
            stride 8, 16, 32 and row-major within a level (see `tfyolo.ops.anchors`).
        class_logits: (batch, anchors, num_classes) logits before the sigmoid.
    """
    activation, padding = config.activation, config.padding
    channels = [scaled_channels(c, config.scale) for c in BASE_CHANNELS]
    repeats = [scaled_repeats(r, config.scale) for r in BASE_REPEATS]
    neck_repeats = scaled_repeats(NECK_REPEATS, config.scale)

    # === Functional Model: backbone ===
    images = keras.Input((config.input_size, config.input_size, 3), name="images")
    x = conv_bn_act(images, channels[0], 3, 2, activation, "stem", padding)
    x = conv_bn_act(x, channels[1], 3, 2, activation, "down1", padding)
    x = c2f(x, channels[1], repeats[0], True, activation, "stage1")
    x = conv_bn_act(x, channels[2], 3, 2, activation, "down2", padding)
    backbone_p3 = c2f(x, channels[2], repeats[1], True, activation, "stage2")
    x = conv_bn_act(backbone_p3, channels[3], 3, 2, activation, "down3", padding)
    backbone_p4 = c2f(x, channels[3], repeats[2], True, activation, "stage3")
    x = conv_bn_act(backbone_p4, channels[4], 3, 2, activation, "down4", padding)
    x = c2f(x, channels[4], repeats[3], True, activation, "stage4")
    backbone_p5 = sppf(x, channels[4], 5, activation, "sppf")

    # === Functional Model: PAN-FPN neck ===
    x = layers.UpSampling2D(2, interpolation="nearest", name="neck_up1")(backbone_p5)
    x = layers.Concatenate(axis=-1, name="neck_cat1")([x, backbone_p4])
    top_down_p4 = c2f(x, channels[3], neck_repeats, False, activation, "neck_td4")
    x = layers.UpSampling2D(2, interpolation="nearest", name="neck_up2")(top_down_p4)
    x = layers.Concatenate(axis=-1, name="neck_cat2")([x, backbone_p3])
    out_p3 = c2f(x, channels[2], neck_repeats, False, activation, "neck_out3")
    x = conv_bn_act(out_p3, channels[2], 3, 2, activation, "neck_down3", padding)
    x = layers.Concatenate(axis=-1, name="neck_cat3")([x, top_down_p4])
    out_p4 = c2f(x, channels[3], neck_repeats, False, activation, "neck_out4")
    x = conv_bn_act(out_p4, channels[3], 3, 2, activation, "neck_down4", padding)
    x = layers.Concatenate(axis=-1, name="neck_cat4")([x, backbone_p5])
    out_p5 = c2f(x, channels[4], neck_repeats, False, activation, "neck_out5")

    # === Functional Model: decoupled head ===
    box_channels = max(16, channels[2] // 4, 4 * config.reg_max)
    class_channels = max(channels[2], min(config.num_classes, 100))
    box_levels, class_levels = [], []
    for level, (feature, stride) in enumerate(zip((out_p3, out_p4, out_p5), config.strides)):
        cells = (config.input_size // stride) ** 2
        box = conv_bn_act(feature, box_channels, 3, 1, activation, f"head{level}_box1")
        box = conv_bn_act(box, box_channels, 3, 1, activation, f"head{level}_box2")
        # Bias 1.0 as YOLOv8: every bin starts equally likely, so early boxes are not degenerate.
        box = layers.Conv2D(
            4 * config.reg_max, 1, bias_initializer=keras.initializers.Constant(1.0), name=f"head{level}_box_pred"
        )(box)
        box_levels.append(layers.Reshape((cells, 4 * config.reg_max), name=f"head{level}_box_flat")(box))

        cls = conv_bn_act(feature, class_channels, 3, 1, activation, f"head{level}_cls1")
        cls = conv_bn_act(cls, class_channels, 3, 1, activation, f"head{level}_cls2")
        # YOLOv8's prior: about 5 objects per image spread over the level's cells and classes.
        prior = math.log(5 / config.num_classes / (config.input_size / stride) ** 2)
        cls = layers.Conv2D(
            config.num_classes, 1, bias_initializer=keras.initializers.Constant(prior), name=f"head{level}_cls_pred"
        )(cls)
        class_levels.append(layers.Reshape((cells, config.num_classes), name=f"head{level}_cls_flat")(cls))

    box_distribution = layers.Concatenate(axis=1, name=BOX_OUTPUT)(box_levels)
    class_logits = layers.Concatenate(axis=1, name=CLASS_OUTPUT)(class_levels)
    return keras.Model(images, {BOX_OUTPUT: box_distribution, CLASS_OUTPUT: class_logits}, name=name)
