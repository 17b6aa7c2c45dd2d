"""Wrap a trained float detector for quantization-aware training, and seed its fake-quant ranges."""

import fnmatch

import numpy as np
import tensorflow_model_optimization as tfmot

from tfyolo.compat import keras
from tfyolo.errors import ModelError
from tfyolo.models.families import LEGACY_FAMILY, model_family
from tfyolo.models.prediction_outputs import PREDICTION_OUTPUTS, outputs_with_extreme
from tfyolo.qat.quantize_configs import quantize_scope, rule_for
from tfyolo.training.compression import hold_centroids, preserve_scheme


def is_qat_model(model):
    return any(type(layer).__name__ in ("QuantizeWrapperV2", "QuantizeLayer") for layer in model.layers)


def has_float_layers(model):
    """True for a staged QAT model: some compute layers were left unwrapped (in float)."""
    plain = [
        layer
        for layer in model.layers
        if type(layer).__name__
        in ("Conv2D", "DepthwiseConv2D", "BatchNormalization", "Activation", "ReLU", "HardSwish")
    ]
    return is_qat_model(model) and bool(plain)


def build_qat_model(float_model, staged=False, preserve=None, family=None):
    """Returns the QAT model: fake-quant everywhere, or (staged) everywhere but the head.

    family: the model's `ModelFamily` (whose layer roles say which layers are the head); YOLOv8 when None.
    preserve: None for tfmot's default 8-bit scheme, or what `tfyolo compress` made ("prune", "cluster") for its
    structure-preserving scheme (`tfyolo.training.compression.preserve_scheme`); a cluster-preserving model has its
    centroids held (`hold_centroids`), in training and when it is rebuilt to load its saved weights alike.

    Staged QAT quantizes backbone and neck only and keeps the detection head in float, as TF Model Garden's
    `build_qat_retinanet` does, for when full QAT loses too much accuracy.
    """
    if is_qat_model(float_model):
        raise ModelError("the model is already quantization-aware; pass the float model.")
    annotate = tfmot.quantization.keras.quantize_annotate_layer
    family = family or model_family(LEGACY_FAMILY)

    def clone_function(layer):
        fresh = layer.__class__.from_config(layer.get_config())
        if staged and family.section_of(layer.name) == "head":
            return fresh
        rule = rule_for(layer)
        return annotate(fresh, rule.config_class()) if rule else annotate(fresh)

    with quantize_scope():
        annotated = keras.models.clone_model(float_model, clone_function=clone_function)
        annotated.set_weights(float_model.get_weights())
        if preserve is None:
            return tfmot.quantization.keras.quantize_apply(annotated)
        model = tfmot.quantization.keras.quantize_apply(annotated, preserve_scheme(preserve))
    if preserve == "cluster":
        hold_centroids(model)
    return model


def _wrapped_name(wrapper):
    return wrapper.layer.name if hasattr(wrapper, "layer") else None


# ai-edge-quantizer's moving average of the per-image ranges (`qsv_utils.moving_average_update`): the statistic
# PTQ's `range_statistic: outputs_min_max` keeps inside the network (`tfyolo.quantization.aeq`).
RANGE_SMOOTHING = 0.95


def _is_prediction_layer(name, output):
    """A layer that holds `output`'s predictions: a level's prediction conv or the concatenation of the levels (a
    model holding both of YOLO26's heads names its one-to-one concatenation apart)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in PREDICTION_OUTPUTS[output].layers)


def activation_range(name, minima, maxima):
    """(min, max) of the fake-quant range on layer `name`'s output from its per-image `minima` and `maxima`, by
    the rule of PTQ's `range_statistic: outputs_min_max`: the moving average inside the network,
    whose clipping of rare outliers buys resolution, and the extremes where a clipped value is a wrong answer (the
    ends `tfyolo.models.prediction_outputs.PREDICTION_OUTPUTS` names, the table `aeq.choose_ranges` reads too). Zero
    stays inside the range, as an integer zero point needs. (The PTQ default, `outputs_mse`, searches each inner range
    on a histogram of every calibration value, which a per-layer min / max pass does not keep; a QAT model's
    fake-quant ranges move during training anyway.)"""
    low, high = minima[0], maxima[0]
    for image_low, image_high in zip(minima[1:], maxima[1:]):
        low = RANGE_SMOOTHING * low + (1.0 - RANGE_SMOOTHING) * image_low
        high = RANGE_SMOOTHING * high + (1.0 - RANGE_SMOOTHING) * image_high
    if any(_is_prediction_layer(name, output) for output in outputs_with_extreme("min")):
        low = min(minima)
    if any(_is_prediction_layer(name, output) for output in outputs_with_extreme("max")):
        high = max(maxima)
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    return low, max(high, low + 1e-6)


def seed_quantization_ranges(qat_model, float_model, images):
    """Sets every fake-quant range from the float model's outputs on `images` (calibration, like PTQ): activation
    ranges by `activation_range`, the rule of tfyolo's default int8 PTQ (on the images given here).

    tfmot's activation ranges start at [-6, 6] and follow an EMA with decay 0.999: a short fine-tune would
    spend its first thousand steps learning what one calibration pass measures. The extremes everywhere (this
    function's rule before) started the imported YOLO26n's QAT models lower on the PennFudan val images, as their
    fake-quant models score: one-to-one 1.4 pt and one-to-many 1.5 pt below this rule. Weight ranges are
    set to the per-channel absolute maximum of each kernel, as tfmot's symmetric LastValueQuantizer would compute.
    Returns the number of ranges set.
    """
    if not len(images):
        raise ModelError("seeding the QAT model's ranges needs at least one calibration image; received none.")
    targets = {}
    for layer in qat_model.layers:
        variables = {v.name.split("/")[-1].split(":")[0]: v for v in layer.weights}
        for prefix in ("output", "post_activation"):
            if f"{prefix}_min" in variables and _wrapped_name(layer) is not None:
                targets[_wrapped_name(layer)] = (variables[f"{prefix}_min"], variables[f"{prefix}_max"])
    probe = keras.Model(float_model.input, [float_model.get_layer(name).output for name in targets])
    minima = {name: [] for name in targets}
    maxima = {name: [] for name in targets}
    for image in images:
        outputs = probe(image[None], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for name, output in zip(targets, outputs):
            values = output.numpy()
            minima[name].append(float(values.min()))
            maxima[name].append(float(values.max()))
    for name, (low, high) in targets.items():
        low_value, high_value = activation_range(name, minima[name], maxima[name])
        low.assign(low_value)
        high.assign(high_value)
    count = len(targets)
    for layer in qat_model.layers:
        variables = {v.name.split("/")[-1].split(":")[0]: v for v in layer.weights}
        if type(layer).__name__ == "QuantizeLayer":
            # The model input is letterboxed RGB / 255: exactly [0, 1].
            low = next(v for k, v in variables.items() if k.endswith("_min"))
            high = next(v for k, v in variables.items() if k.endswith("_max"))
            low.assign(0.0)
            high.assign(1.0)
            count += 1
        if "kernel_min" in variables:
            # The wrapped layer's `kernel` attribute is the fake-quantized tensor; read the variable itself.
            kernel = next(v for v in layer.weights if v.name.split("/")[-1].startswith("kernel:")).numpy()
            per_channel = np.abs(kernel).reshape(-1, kernel.shape[-1]).max(axis=0)
            shape = variables["kernel_max"].shape
            value = per_channel if shape.rank and shape[0] == kernel.shape[-1] else per_channel.max()
            variables["kernel_min"].assign(-value)
            variables["kernel_max"].assign(value)
            count += 1
    return count
