"""Reading a .tflite with the LiteRT interpreter: making one, what the file holds (ops and tensors by type, so an "int8"
artifact is proven integer-only) and its `serving_default` signature. Evaluation, benchmarks, conversion checks and
bundles all read models through here."""

import collections

import numpy as np

# Ops that only move data between float and integer domains at the model boundary, or carry no arithmetic.
BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}
SIGNATURE_KEY = "serving_default"
INTEGER_TYPES = {np.dtype("int8"), np.dtype("uint8"), np.dtype("int16"), np.dtype("int32"), np.dtype("int64")}


def make_interpreter(model_content=None, model_path=None, num_threads=1, xnnpack=True):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(
        model_content=model_content,
        model_path=None if model_path is None else str(model_path),
        num_threads=num_threads,
        experimental_op_resolver_type=resolver,
    )
    interpreter.allocate_tensors()
    return interpreter


def read_graph(model_content):
    """(interpreter, op details, {tensor index: tensor detail}) of a model as written: without XNNPACK, which would
    fold the ops it runs into DELEGATE nodes."""
    interpreter = make_interpreter(model_content=model_content, xnnpack=False)
    tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    return interpreter, interpreter._get_ops_details(), tensors


def inspect_tflite(model_content):
    """Returns {"io_types": {input or output name: dtype}, "ops": {op: count}, "tensor_types": {dtype: count},
    "float_compute_ops": [...], ...}."""
    interpreter, ops, tensors = read_graph(model_content)
    op_counts = collections.Counter(op["op_name"] for op in ops)
    tensor_types = collections.Counter(np.dtype(detail["dtype"]).name for detail in tensors.values())
    float_compute = []
    for op in ops:
        if op["op_name"] in BOUNDARY_OPS:
            continue
        types = {np.dtype(tensors[index]["dtype"]) for index in list(op["inputs"]) + list(op["outputs"]) if index >= 0}
        if any(np.issubdtype(dtype, np.floating) for dtype in types):
            float_compute.append(op["op_name"])
    boundary = list(interpreter.get_input_details()) + list(interpreter.get_output_details())
    return {
        "io_types": {detail["name"]: np.dtype(detail["dtype"]).name for detail in boundary},
        "ops": dict(sorted(op_counts.items())),
        "tensor_types": dict(sorted(tensor_types.items())),
        "float_compute_ops": float_compute,
        "num_ops": len(ops),
    }


def signature_outputs(interpreter):
    """{output key: tensor index} of the model's `serving_default` signature, or {} when it has none."""
    signatures = interpreter._get_full_signature_list()
    return dict(signatures.get(SIGNATURE_KEY, {}).get("outputs", {}))
