"""Selective quantization: keep named layers in float inside an otherwise integer model.

TFLite's QuantizationDebugger re-quantizes with a denylist of nodes; its nodes are named after the TFLite
tensors, which carry the Keras layer names (`.../head0_cls_pred/BiasAdd`, fused `..._bn/FusedBatchNormV3;...`),
so layer-name patterns are matched against every path component of those names.
"""

import fnmatch

from tfyolo.compat import tf
from tfyolo.errors import ConfigError


def _components(tensor_name):
    parts = set()
    for piece in tensor_name.split(";"):
        parts.update(piece.split("/"))
    return parts


def matching_nodes(quantized_bytes, patterns):
    """Output tensor names of the ops in `quantized_bytes` whose names contain a layer matching a pattern."""
    from tfyolo.tflite_runtime import make_interpreter

    interpreter = make_interpreter(model_content=quantized_bytes, xnnpack=False)
    tensors = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}
    nodes, unmatched = [], set(patterns)
    for op in interpreter._get_ops_details():
        for output in op["outputs"]:
            name = tensors[output]
            hits = {p for p in patterns if any(fnmatch.fnmatchcase(part, p) for part in _components(name))}
            if hits:
                nodes.append(name)
                unmatched -= hits
    if unmatched:
        raise ConfigError(f"keep_float pattern(s) {sorted(unmatched)} match no layer of the model.")
    return sorted(set(nodes))


def convert_keeping_float(converter, recipe, representative):
    quantized = converter.convert()
    nodes = matching_nodes(quantized, recipe.keep_float)
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=representative, debug_options=options
    )
    return debugger.get_nondebug_quantized_model()
