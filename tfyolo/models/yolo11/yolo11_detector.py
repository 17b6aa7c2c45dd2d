"""YOLO11 (Ultralytics' `cfg/models/11/yolo11.yaml`) as one flat functional Keras model."""

from tfyolo.compat import keras
from tfyolo.models.attention import c2psa
from tfyolo.models.blocks import c3k2, conv_bn_act, sppf
from tfyolo.models.task_heads import task_heads
from tfyolo.models.yolo11.yolo11_presets import C3K_SCALES

layers = keras.layers

# The yaml's rows before the scale applies: (channels, repeats, c3k, expansion) of each C3k2, channels of each
# strided Conv. Backbone: Conv 64, Conv 128, C3k2(256, False, 0.25), Conv 256, C3k2(512, False, 0.25), Conv 512,
# C3k2(512, True), Conv 1024, C3k2(1024, True), SPPF(1024, 5), C2PSA(1024).
BACKBONE_CONVS = (64, 128, 256, 512, 1024)
BACKBONE_C3K2 = ((256, 2, False, 0.25), (512, 2, False, 0.25), (512, 2, True, 0.5), (1024, 2, True, 0.5))
PSA_CHANNELS, PSA_REPEATS = 1024, 2
# Neck: C3k2 512 (top-down P4), 256 (P3 out), Conv 256, C3k2 512 (P4 out), Conv 512, C3k2 1024 c3k (P5 out), as
# (channels, repeats, c3k, attention).
NECK_C3K2 = {
    "td4": (512, 2, False, False),
    "out3": (256, 2, False, False),
    "out4": (512, 2, False, False),
    "out5": (1024, 2, True, False),
}


def build_yolo11_detector(config, name="yolo_detector"):
    """The YOLO11 detector for `config` (family "yolo11"), uncompiled; outputs as `tfyolo.models.detect_head`."""
    images, features = yolo11_body(config)
    # === Functional Model: decoupled head ===
    return keras.Model(images, task_heads(features, config, class_branch="depthwise"), name=name)


def yolo11_body(config, sppf_options=None, neck_c3k2=None):
    """YOLO11's input, backbone and PAN-FPN neck: (the image input, the (P3, P4, P5) features for the head).

    YOLO26 is this layout with two rows changed, so it passes them: sppf_options (keywords of `blocks.sppf`: its
    linear cv1 and residual) and neck_c3k2 ({neck block: (channels, repeats, c3k, attention)}); default YOLO11's.
    """
    scale = config.model_family.scales[config.scale]
    activation, padding = config.activation, config.padding
    # parse_model makes every C3k2 of the m, l and x scales a C3k one.
    forced_c3k = config.scale in C3K_SCALES
    neck_c3k2 = neck_c3k2 or NECK_C3K2

    def stage(x, base_channels, repeats, use_c3k, expansion, block_name, attention=False):
        return c3k2(
            x,
            scale.channels(base_channels),
            scale.repeats(repeats),
            use_c3k or forced_c3k,
            activation,
            block_name,
            expansion=expansion,
            attention=attention,
        )

    def neck(x, key):
        base_channels, repeats, use_c3k, attention = neck_c3k2[key]
        return stage(x, base_channels, repeats, use_c3k, 0.5, f"neck_{key}", attention)

    convs = [scale.channels(c) for c in BACKBONE_CONVS]

    # === Functional Model: backbone ===
    images = keras.Input((config.input_size, config.input_size, 3), name="images")
    x = conv_bn_act(images, convs[0], 3, 2, activation, "stem", padding)
    x = conv_bn_act(x, convs[1], 3, 2, activation, "down1", padding)
    x = stage(x, *BACKBONE_C3K2[0], "stage1")
    x = conv_bn_act(x, convs[2], 3, 2, activation, "down2", padding)
    backbone_p3 = stage(x, *BACKBONE_C3K2[1], "stage2")
    x = conv_bn_act(backbone_p3, convs[3], 3, 2, activation, "down3", padding)
    backbone_p4 = stage(x, *BACKBONE_C3K2[2], "stage3")
    x = conv_bn_act(backbone_p4, convs[4], 3, 2, activation, "down4", padding)
    x = stage(x, *BACKBONE_C3K2[3], "stage4")
    x = sppf(x, convs[4], 5, activation, "sppf", **(sppf_options or {}))
    backbone_p5 = c2psa(x, scale.channels(PSA_CHANNELS), scale.repeats(PSA_REPEATS), activation, "psa")

    # === Functional Model: PAN-FPN neck ===
    x = layers.UpSampling2D(2, interpolation="nearest", name="neck_up1")(backbone_p5)
    x = layers.Concatenate(axis=-1, name="neck_cat1")([x, backbone_p4])
    top_down_p4 = neck(x, "td4")
    x = layers.UpSampling2D(2, interpolation="nearest", name="neck_up2")(top_down_p4)
    x = layers.Concatenate(axis=-1, name="neck_cat2")([x, backbone_p3])
    out_p3 = neck(x, "out3")
    x = conv_bn_act(out_p3, scale.channels(256), 3, 2, activation, "neck_down3", padding)
    x = layers.Concatenate(axis=-1, name="neck_cat3")([x, top_down_p4])
    out_p4 = neck(x, "out4")
    x = conv_bn_act(out_p4, scale.channels(512), 3, 2, activation, "neck_down4", padding)
    x = layers.Concatenate(axis=-1, name="neck_cat4")([x, backbone_p5])
    out_p5 = neck(x, "out5")
    return images, (out_p3, out_p4, out_p5)
