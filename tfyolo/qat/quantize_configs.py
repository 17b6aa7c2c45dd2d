"""QuantizeConfigs for what tfmot's default 8-bit registry does not cover, as one data table.

Everything else in the detector (Conv2D, BatchNormalization, Activation("swish"), ReLU, Add, Concatenate,
MaxPooling2D, UpSampling2D, Reshape) is handled by tfmot's own registry and layout transforms.
"""

import dataclasses

import tensorflow_model_optimization as tfmot

from tfyolo.compat import keras
from tfyolo.models.hard_swish import HardSwish

quantizers = tfmot.quantization.keras.quantizers


class OutputQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """No weights; one 8-bit fake-quant on the output, with tfmot's default activation quantizer."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self):
        return {}

    def __eq__(self, other):
        return type(other) is type(self)


@dataclasses.dataclass(frozen=True)
class QuantizeRule:
    layer_class: type
    config_class: type
    why: str


QUANTIZE_RULES = (
    QuantizeRule(
        HardSwish,
        OutputQuantizeConfig,
        "TFLite lowers the layer to its native int8 HARD_SWISH op, which takes its input's scale and needs only "
        "an output scale; without a config tfmot refuses the custom layer outright.",
    ),
    QuantizeRule(
        keras.layers.Dot,
        OutputQuantizeConfig,
        "YOLO11's attention (q.k scores, attention.v): TFLite lowers Dot to BATCH_MATMUL, whose int8 kernel takes "
        "both inputs at the scales their producers already carry (a Reshape of a conv output, a SOFTMAX output on "
        "its fixed 1/256 step) and needs one output scale; tfmot's registry has no entry for Dot at all.",
    ),
)


def rule_for(layer):
    return next((rule for rule in QUANTIZE_RULES if isinstance(layer, rule.layer_class)), None)


def quantize_scope():
    """tfmot's scope plus this project's custom layers and configs: needed to load a saved QAT model."""
    objects = {"HardSwish": HardSwish, "OutputQuantizeConfig": OutputQuantizeConfig}
    return tfmot.quantization.keras.quantize_scope(objects)
