"""YOLOv8 building blocks written with plain Keras layers only.

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


def conv_bn_act(inputs, filters, kernel_size, strides, activation, name, padding="same"):
    """Conv2D (no bias) -> BatchNormalization -> activation: the pattern tfmot folds and TFLite fuses.

    padding "symmetric" pads kernel_size // 2 pixels on every side first (PyTorch's convention); it only differs
    from Keras' "same" for strided convolutions, which pad (0, 1) on even inputs."""
    if padding == "symmetric" and strides > 1:
        inputs = layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(inputs)
    conv_padding = "valid" if padding == "symmetric" and strides > 1 else "same"
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding=conv_padding, use_bias=False, name=f"{name}_conv")(
        inputs
    )
    x = layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM, name=f"{name}_bn")(x)
    return ACTIVATION_LAYERS[activation](f"{name}_act")(x)


def bottleneck(inputs, filters, shortcut, activation, name):
    x = conv_bn_act(inputs, filters, 3, 1, activation, f"{name}_cv1")
    x = conv_bn_act(x, filters, 3, 1, activation, f"{name}_cv2")
    if shortcut:
        x = layers.Add(name=f"{name}_add")([inputs, x])
    return x


def c2f(inputs, filters, num_bottlenecks, shortcut, activation, name):
    """YOLOv8's C2f block.

    YOLOv8 runs one 1x1 conv to 2 * hidden channels and splits its output in two. Splitting a tensor takes
    tf.split or slicing, which tfmot rejects, so the two halves are two parallel 1x1 convolutions instead: the same
    parameters and the same function (a 1x1 conv's output channels are independent), with no split op at all.
    """
    hidden = filters // 2
    branches = [
        conv_bn_act(inputs, hidden, 1, 1, activation, f"{name}_cv1a"),
        conv_bn_act(inputs, hidden, 1, 1, activation, f"{name}_cv1b"),
    ]
    for index in range(num_bottlenecks):
        branches.append(bottleneck(branches[-1], hidden, shortcut, activation, f"{name}_m{index}"))
    x = layers.Concatenate(axis=-1, name=f"{name}_concat")(branches)
    return conv_bn_act(x, filters, 1, 1, activation, f"{name}_cv2")


def sppf(inputs, filters, pool_size, activation, name):
    """Spatial pyramid pooling, fast: three chained max-pools stand in for pools of size 5, 9 and 13."""
    hidden = inputs.shape[-1] // 2
    x = conv_bn_act(inputs, hidden, 1, 1, activation, f"{name}_cv1")
    pooled = [x]
    for index in range(3):
        pooled.append(layers.MaxPooling2D(pool_size, strides=1, padding="same", name=f"{name}_pool{index}")(pooled[-1]))
    x = layers.Concatenate(axis=-1, name=f"{name}_concat")(pooled)
    return conv_bn_act(x, filters, 1, 1, activation, f"{name}_cv2")
