"""Wrap a trained float detector for quantization-aware training, and seed its fake-quant ranges."""

import numpy as np
import tensorflow_model_optimization as tfmot

from tfyolo.compat import keras
from tfyolo.errors import ModelError
from tfyolo.models.families import LEGACY_FAMILY, model_family
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


def seed_quantization_ranges(qat_model, float_model, images, batch_size=8):
    """Sets every fake-quant range from the float model's statistics on `images` (calibration, like PTQ).

    tfmot's activation ranges start at [-6, 6] and follow an EMA with decay 0.999: a short fine-tune would
    spend its first thousand steps learning what one calibration pass measures. Weight ranges are set to the
    per-channel absolute maximum of each kernel, as tfmot's symmetric LastValueQuantizer would compute.
    Returns the number of ranges set.
    """
    targets = {}
    for layer in qat_model.layers:
        variables = {v.name.split("/")[-1].split(":")[0]: v for v in layer.weights}
        for prefix in ("output", "post_activation"):
            if f"{prefix}_min" in variables and _wrapped_name(layer) is not None:
                targets[_wrapped_name(layer)] = (variables[f"{prefix}_min"], variables[f"{prefix}_max"])
    probe = keras.Model(float_model.input, [float_model.get_layer(name).output for name in targets])
    minimum = {name: 0.0 for name in targets}
    maximum = {name: 0.0 for name in targets}
    for start in range(0, len(images), batch_size):
        outputs = probe(images[start : start + batch_size], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for name, output in zip(targets, outputs):
            values = output.numpy()
            minimum[name] = min(minimum[name], float(values.min()))
            maximum[name] = max(maximum[name], float(values.max()))
    for name, (low, high) in targets.items():
        low.assign(minimum[name])
        high.assign(max(maximum[name], minimum[name] + 1e-6))
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
