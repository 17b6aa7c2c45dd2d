"""YOLOv8 (Ultralytics' `cfg/models/v8/yolov8.yaml`) as one flat functional Keras model."""

from tfyolo.compat import keras
from tfyolo.models.blocks import c2f, conv_bn_act, sppf
from tfyolo.models.task_heads import task_heads

layers = keras.layers

# Backbone/neck channels of the yaml's layers 0, 1, 3, 5, 7 and its C2f repeats, before the scale applies.
BASE_CHANNELS = (64, 128, 256, 512, 1024)
BASE_REPEATS = (3, 6, 6, 3)
NECK_REPEATS = 3


def build_yolov8_detector(config, name="yolo_detector"):
    """The YOLOv8 detector for `config` (family "yolov8"), uncompiled; outputs as `tfyolo.models.detect_head`."""
    scale = config.model_family.scales[config.scale]
    activation, padding = config.activation, config.padding
    channels = [scale.channels(c) for c in BASE_CHANNELS]
    repeats = [scale.repeats(r) for r in BASE_REPEATS]
    neck_repeats = scale.repeats(NECK_REPEATS)

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
    return keras.Model(images, task_heads((out_p3, out_p4, out_p5), config, class_branch="conv"), name=name)
