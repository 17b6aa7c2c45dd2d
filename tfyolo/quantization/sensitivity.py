"""Per-layer int8 sensitivity: TFLite's QuantizationDebugger error of each quantized tensor against float.

The figure is RMSE / scale: the root-mean-square difference between the int8 layer output (dequantized) and the
float layer output, in units of that tensor's quantization step. Around 0.29 (1/sqrt(12)) is pure rounding
noise; larger values mean the range or the inputs make the layer lose more than rounding.
"""

import csv
import math
import tempfile
import warnings
from pathlib import Path

from tfyolo.compat import tf
from tfyolo.models.families import LEGACY_FAMILY, model_family
from tfyolo.quantization.converter import make_converter, representative_dataset
from tfyolo.quantization.recipe import Recipe


def keras_layer_for(tensor_name, layer_names):
    """The Keras layer a TFLite tensor comes from (its name carries the layer name as a path component)."""
    parts = set()
    for piece in tensor_name.split(";"):
        parts.update(piece.split("/"))
    candidates = [name for name in layer_names if name in parts]
    # A fused tensor names conv, bn and activation: report the layer the op starts from (the conv).
    for suffix in ("_conv", "_pred", ""):
        for name in candidates:
            if name.endswith(suffix):
                return name
    return None


def layer_sensitivity(model, calibration_images, debug_images=None, family=None):
    """Returns [{"layer", "section", "op", "tensor", "rmse_over_scale", ...}] sorted worst first; the sections are
    the layer roles of `family` (a ModelFamily; YOLOv8 when None)."""
    family = family or model_family(LEGACY_FAMILY)
    recipe = Recipe(name="int8_debug", mode="int8")
    converter, _ = make_converter(model, recipe, representative_dataset(calibration_images))
    debug_data = representative_dataset(debug_images if debug_images is not None else calibration_images)
    with warnings.catch_warnings():
        # The debugger runs its models on tf.lite.Interpreter, whose deprecation notice is TensorFlow's to fix.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=debug_data)
        debugger.run()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "layer_stats.csv"
        with open(path, "w") as stream:
            debugger.layer_statistics_dump(stream)
        rows = list(csv.DictReader(open(path)))
    layer_names = [layer.name for layer in model.layers]
    by_layer = {}
    for row in rows:
        scale = float(row["scale"]) if row["scale"] else 0.0
        if scale <= 0:
            continue
        ratio = math.sqrt(float(row["mean_squared_error"])) / scale
        layer = keras_layer_for(row["tensor_name"], layer_names)
        if layer is None:
            continue
        entry = {
            "layer": layer,
            "section": family.section_of(layer),
            "op": row["op_name"],
            "tensor": row["tensor_name"],
            "rmse_over_scale": ratio,
            "max_abs_error": float(row["max_abs_error"]),
            "scale": scale,
        }
        if layer not in by_layer or ratio > by_layer[layer]["rmse_over_scale"]:
            by_layer[layer] = entry
    return sorted(by_layer.values(), key=lambda entry: -entry["rmse_over_scale"])
