from tfyolo.compat import keras, tf


@keras.saving.register_keras_serializable(package="tfyolo")
class HardSwish(keras.layers.Layer):
    """Hard-swish, `x * relu6(x + 3) / 6` (MobileNetV3).

    tf_keras has no hard-swish activation (its `hard_sigmoid` is `0.2x + 0.5`, a different curve), and writing it
    with `Multiply` or tf ops would put layers into the graph that tfmot cannot wrap; one layer keeps the graph
    flat and converts to TFLite's native `HARD_SWISH` op.
    """

    def call(self, inputs):
        return inputs * tf.nn.relu6(inputs + 3.0) / 6.0
