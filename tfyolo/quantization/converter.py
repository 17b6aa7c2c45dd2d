"""Keras detector -> .tflite bytes, one recipe at a time.

Conversion starts from a batch-1 concrete function, never `from_keras_model`: that path first exports a
SavedModel, which took 48-272 s for the n model here against 2-16 s for the concrete function, with identical
output, and it leaves SHAPE/STRIDED_SLICE/PACK ops for every Reshape of a batch-None graph.
"""

from tfyolo.compat import tf
from tfyolo.errors import ConfigError
from tfyolo.quantization.signature import add_signature, output_names

INPUT_NAME = "images"
IO_DTYPES = {"float32": tf.float32, "int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16}


def detector_function(model):
    """(concrete function, tf.function) of `model` for a static [1, H, W, 3] float input named "images"."""
    size = int(model.input_shape[1])
    function = tf.function(lambda images: model(images, training=False))
    spec = tf.TensorSpec([1, size, size, 3], tf.float32, name=INPUT_NAME)
    return function.get_concrete_function(spec), function


def _fp32(converter, recipe, representative, qat):
    pass


def _fp16(converter, recipe, representative, qat):
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


def _dynamic(converter, recipe, representative, qat):
    # DEFAULT without a representative dataset = dynamic range: int8 weights, float activations.
    converter.optimizations = [tf.lite.Optimize.DEFAULT]


def _full_integer(ops_set):
    def configure(converter, recipe, representative, qat):
        # A QAT model carries its learned ranges in its fake-quant nodes: it needs no calibration.
        if representative is None and not qat:
            raise ConfigError(f"recipe {recipe.name!r} ({recipe.mode}) needs calibration images.")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if not qat:
            converter.representative_dataset = representative
        # Float kernels are only allowed next to the integer set when the recipe names layers to keep in float
        # (or a staged QAT model left its head in float); otherwise the converter must fail rather than quietly
        # leave float ops in an "integer" model.
        allow_float = recipe.keep_float or qat == "staged"
        if not qat:
            converter.target_spec.supported_ops = [ops_set] + ([tf.lite.OpsSet.TFLITE_BUILTINS] if allow_float else [])
        # For QAT models the ops set stays the default: restricting it to INT8 makes the converter demand a
        # representative dataset. Integer-only is then enforced on the result (`check_artifact`).
        converter.inference_input_type = IO_DTYPES[recipe.io_type]
        converter.inference_output_type = IO_DTYPES[recipe.io_type]

    return configure


CONFIGURE = {
    "fp32": _fp32,
    "fp16": _fp16,
    "dynamic": _dynamic,
    "int8": _full_integer(tf.lite.OpsSet.TFLITE_BUILTINS_INT8),
    "int16x8": _full_integer(tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8),
}


def qat_kind(model):
    """None for a float model, "full" for a QAT model, "staged" for one that keeps some layers in float."""
    from tfyolo.qat.qat_model import has_float_layers, is_qat_model

    if not is_qat_model(model):
        return None
    return "staged" if has_float_layers(model) else "full"


def make_converter(model, recipe, representative=None):
    """(TFLiteConverter configured for `recipe`, {graph output name: output key} for `add_signature`)."""
    concrete, function = detector_function(model)
    # Passing the tf.function as trackable_obj selects the direct concrete-function pipeline (no deprecation).
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], function)
    qat = qat_kind(model)
    if qat and recipe.mode != "int8":
        raise ConfigError(f"recipe {recipe.name!r}: a QAT model converts with int8 recipes only, not {recipe.mode}.")
    CONFIGURE[recipe.mode](converter, recipe, representative, qat)
    if not recipe.per_channel:
        # Private but stable flag (TF 2.9+): per-tensor weight scales, for accelerators that need them.
        converter._experimental_disable_per_channel = True
    return converter, output_names(concrete)


def representative_dataset(images):
    """A representative dataset over float32 (N, H, W, 3) model inputs, one image per step."""

    def generate():
        for image in images:
            yield [image[None].astype("float32")]

    return generate


def convert(model, recipe, calibration_images=None, model_config=None):
    """Converts `model` with `recipe`; returns the .tflite bytes.

    calibration_images: float32 (N, H, W, 3) letterboxed inputs in [0, 1] for full-integer recipes.
    model_config: the model's ModelConfig, needed only to rebuild it at a recipe's `input_size`.
    """
    if recipe.input_size and recipe.input_size != int(model.input_shape[1]):
        model, calibration_images = _at_input_size(model, recipe, calibration_images, model_config)
    if recipe.quantizer == "ai_edge_quantizer":
        return _convert_with_aeq(model, recipe, calibration_images)
    representative = None if calibration_images is None else representative_dataset(calibration_images)
    converter, outputs = make_converter(model, recipe, representative)
    if recipe.keep_float:
        from tfyolo.quantization.selective import convert_keeping_float

        content = convert_keeping_float(converter, recipe, representative)
    elif recipe.min_score is not None:
        if qat_kind(model):
            raise ConfigError(
                f"recipe {recipe.name!r}: min_score sets calibrated ranges; a QAT model carries the ranges it "
                "learned. Convert it with a recipe without min_score."
            )
        content = _convert_with_score_floor(converter, recipe)
    else:
        content = converter.convert()
    return add_signature(content, outputs, INPUT_NAME)


def _at_input_size(model, recipe, calibration_images, model_config):
    """The model rebuilt at the recipe's input size with the same weights, and the calibration images at it."""
    from tfyolo.data.images import resize_square_inputs
    from tfyolo.models.resize import resize_detector

    if qat_kind(model):
        raise ConfigError(
            f"recipe {recipe.name!r}: input_size rebuilds the float model; a QAT model is converted at the size it "
            "was trained at. Convert it with a recipe without input_size."
        )
    if model_config is None:
        raise ConfigError(
            f"recipe {recipe.name!r}: input_size rebuilds the model from its architecture, which its file's "
            "metadata holds: convert the model file (tfyolo convert), not a model in memory."
        )
    resized = resize_detector(model, model_config, recipe.input_size)
    images = None if calibration_images is None else resize_square_inputs(calibration_images, recipe.input_size)
    return resized, images


def _convert_with_score_floor(converter, recipe):
    """TFLiteConverter's int8 in its two halves, the class logits' calibrated floor raised between them
    (`tfyolo.quantization.score_floor`). The quantize call is the one `TFLiteConverter.convert` makes for int8."""
    from tensorflow.lite.python.convert import mlir_quantize

    from tfyolo.quantization.score_floor import floor_calibrated_model

    converter._experimental_calibrate_only = True
    calibrated = floor_calibrated_model(converter.convert(), recipe.min_score)
    return mlir_quantize(
        calibrated,
        disable_per_channel=not recipe.per_channel,
        input_data_type=IO_DTYPES[recipe.io_type],
        output_data_type=IO_DTYPES[recipe.io_type],
    )


def _convert_with_aeq(model, recipe, calibration_images):
    """The fp32 TFLite (with its signature), then ai-edge-quantizer's static int8 on it."""
    from tfyolo.quantization import aeq
    from tfyolo.quantization.recipe import Recipe

    if calibration_images is None:
        raise ConfigError(f"recipe {recipe.name!r} (int8 through ai-edge-quantizer) needs calibration images.")
    if qat_kind(model):
        raise ConfigError(
            f"recipe {recipe.name!r}: a QAT model carries its own ranges; convert it with TFLiteConverter."
        )
    converter, outputs = make_converter(model, Recipe(name="fp32", mode="fp32"))
    fp32 = add_signature(converter.convert(), outputs, INPUT_NAME)
    if recipe.int16_layers and not aeq.matched_tensor_count(fp32, recipe.int16_layers):
        raise ConfigError(
            f"recipe {recipe.name!r}: int16_layers {list(recipe.int16_layers)} match no layer of this model."
        )
    return aeq.quantize(fp32, recipe, calibration_images)
