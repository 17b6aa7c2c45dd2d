"""YOLO building blocks (YOLOv8's C2f, YOLO11's C3k2 and C3k, SPPF) written with plain Keras layers only.

Every block is a function that adds layers to a functional graph, so the detector stays one flat model that
`tfmot.quantization.keras.quantize_model` can wrap: no Lambda, no raw tf ops on Keras tensors (they become
TFOpLambda layers, which tfmot cannot clone) and no nested models.
"""

from tfyolo.compat import keras
from tfyolo.models.hard_swish import HardSwish

layers = keras.layers

ACTIVATION_LAYERS = {
    # Activation("swish") is SiLU; tfmot's default registry quantizes it (LOGISTIC + MUL in int8 TFLite).
    "silu": lambda name: layers.Activation("swish", name=name),
    # ReLU layers (not Activation("relu6")) so tfmot's Conv+BN+ReLU pattern matches and TFLite fuses the
    # activation into CONV_2D.
    "relu": lambda name: layers.ReLU(name=name),
    "relu6": lambda name: layers.ReLU(max_value=6.0, name=name),
    "hard_swish": lambda name: HardSwish(name=name),
}

# YOLOv8 uses BatchNorm2d(eps=1e-3, momentum=0.03); PyTorch's momentum is Keras' 1 - momentum.
BATCH_NORM_EPSILON = 1e-3
BATCH_NORM_MOMENTUM = 0.97


def conv_bn_act(
    inputs,
    filters,
    kernel_size,
    strides,
    activation,
    name,
    padding="same",
    depthwise=False,
    batch_norm_scale=1.0,
    activation_name=None,
):
    """Conv2D (no bias) -> BatchNormalization -> activation: the pattern tfmot folds and TFLite fuses.

    activation None leaves the activation out (Ultralytics' `act=False`: attention's projections, YOLO26's SPPF
    cv1). depthwise: a DepthwiseConv2D (Ultralytics' DWConv, groups = channels) instead; `filters` must then be the
    input's channels. batch_norm_scale: the BatchNorm's initial gamma, which also scales its beta when weights are
    loaded (attention folds its query scale there). padding "symmetric" pads kernel_size // 2 pixels on every side
    first (PyTorch's convention); it only differs from Keras' "same" for strided convolutions, which pad (0, 1) on
    even inputs. activation_name: the activation layer's name where it is a model output (default `{name}_act`)."""
    if padding == "symmetric" and strides > 1:
        inputs = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(inputs)
    conv_padding = "valid" if padding == "symmetric" and strides > 1 else "same"
    if depthwise:
        if filters != inputs.shape[-1]:
            raise ValueError(f"{name}: a depthwise convolution keeps its {inputs.shape[-1]} channels, not {filters}.")
        conv = layers.DepthwiseConv2D(
            kernel_size, strides=strides, padding=conv_padding, use_bias=False, name=f"{name}_conv"
        )
    else:
        conv = layers.Conv2D(
            filters, kernel_size, strides=strides, padding=conv_padding, use_bias=False, name=f"{name}_conv"
        )
    x = conv(inputs)
    x = layers.BatchNormalization(
        epsilon=BATCH_NORM_EPSILON,
        momentum=BATCH_NORM_MOMENTUM,
        gamma_initializer=keras.initializers.Constant(batch_norm_scale) if batch_norm_scale != 1.0 else "ones",
        name=f"{name}_bn",
    )(x)
    if activation is None:
        return x
    return ACTIVATION_LAYERS[activation](activation_name or f"{name}_act")(x)


def bottleneck(inputs, filters, shortcut, activation, name, hidden=None):
    """Two 3x3 convolutions (to `hidden` channels, then back to `filters`), with a residual when `shortcut`.
    hidden None keeps `filters` (C2f's and C3k's expansion 1.0; C3k2's own Bottlenecks take half)."""
    x = conv_bn_act(inputs, hidden or filters, 3, 1, activation, f"{name}_cv1")
    x = conv_bn_act(x, filters, 3, 1, activation, f"{name}_cv2")
    if shortcut:
        x = layers.Add(name=f"{name}_add")([inputs, x])
    return x


def split_conv(inputs, hidden, activation, name):
    """Ultralytics' `cv1(x).chunk(2)`: one 1x1 conv to 2 * hidden channels, split in two halves.

    Splitting a tensor takes tf.split or slicing, which tfmot rejects, so the two halves are two parallel 1x1
    convolutions instead: the same parameters and the same function (a 1x1 conv's output channels are independent),
    with no split op at all. Returns [first half, second half]."""
    return [
        conv_bn_act(inputs, hidden, 1, 1, activation, f"{name}_cv1a"),
        conv_bn_act(inputs, hidden, 1, 1, activation, f"{name}_cv1b"),
    ]


def c2f(inputs, filters, num_bottlenecks, shortcut, activation, name):
    """YOLOv8's C2f block: cv1 split in two, a chain of Bottlenecks on the second half, cv2 over every piece."""
    hidden = filters // 2
    branches = split_conv(inputs, hidden, activation, name)
    for index in range(num_bottlenecks):
        branches.append(bottleneck(branches[-1], hidden, shortcut, activation, f"{name}_m{index}"))
    x = layers.Concatenate(axis=-1, name=f"{name}_concat")(branches)
    return conv_bn_act(x, filters, 1, 1, activation, f"{name}_cv2")


def c3k(inputs, filters, repeats, shortcut, activation, name):
    """Ultralytics' C3k (a C3 with 3x3 Bottlenecks): cv3(cat(Bottlenecks(cv1 x), cv2 x)), hidden = filters / 2."""
    hidden = int(filters * 0.5)
    x = conv_bn_act(inputs, hidden, 1, 1, activation, f"{name}_cv1")
    for index in range(repeats):
        x = bottleneck(x, hidden, shortcut, activation, f"{name}_m{index}")
    side = conv_bn_act(inputs, hidden, 1, 1, activation, f"{name}_cv2")
    x = layers.Concatenate(axis=-1, name=f"{name}_concat")([x, side])
    return conv_bn_act(x, filters, 1, 1, activation, f"{name}_cv3")


def c3k2(inputs, filters, repeats, use_c3k, activation, name, expansion=0.5, shortcut=True, attention=False):
    """YOLO11's C3k2: C2f's structure (cv1 split, a chain, cv2 over every piece) at hidden = filters * expansion,
    whose inner blocks are Bottlenecks of half that width (c3k False), C3k blocks of two 3x3 Bottlenecks (c3k True),
    or a Bottleneck followed by a PSABlock (attention, YOLO26's last neck block)."""
    from tfyolo.models.attention import psa_block

    hidden = int(filters * expansion)
    branches = split_conv(inputs, hidden, activation, name)
    for index in range(repeats):
        inner = f"{name}_m{index}"
        if attention:
            x = bottleneck(branches[-1], hidden, shortcut, activation, f"{inner}_b", hidden=int(hidden * 0.5))
            x = psa_block(x, max(hidden // 64, 1), activation, f"{inner}_psa")
        elif use_c3k:
            x = c3k(branches[-1], hidden, 2, shortcut, activation, inner)
        else:
            x = bottleneck(branches[-1], hidden, shortcut, activation, inner, hidden=int(hidden * 0.5))
        branches.append(x)
    x = layers.Concatenate(axis=-1, name=f"{name}_concat")(branches)
    return conv_bn_act(x, filters, 1, 1, activation, f"{name}_cv2")


def sppf(inputs, filters, pool_size, activation, name, linear_cv1=False, shortcut=False):
    """Spatial pyramid pooling, fast: three chained max-pools stand in for pools of size 5, 9 and 13.

    linear_cv1: cv1 without activation (YOLO26's SPPF; YOLOv8's and YOLO11's apply it). shortcut: add the input to
    the output (YOLO26; only when the channels agree)."""
    hidden = inputs.shape[-1] // 2
    x = conv_bn_act(inputs, hidden, 1, 1, None if linear_cv1 else activation, f"{name}_cv1")
    pooled = [x]
    for index in range(3):
        pooled.append(layers.MaxPooling2D(pool_size, strides=1, padding="same", name=f"{name}_pool{index}")(pooled[-1]))
    x = layers.Concatenate(axis=-1, name=f"{name}_concat")(pooled)
    x = conv_bn_act(x, filters, 1, 1, activation, f"{name}_cv2")
    if shortcut and inputs.shape[-1] == filters:
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x
