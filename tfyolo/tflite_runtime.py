"""Reading a .tflite with the LiteRT interpreter: making one, what the file holds (ops and tensors by type, so an "int8"
artifact is proven integer-only) and its `serving_default` signature. Evaluation, benchmarks, conversion checks and
bundles all read models through here."""

import collections
import functools
import os
import signal
from pathlib import Path

import numpy as np

from tfyolo.config import MAX_INPUT_SIZE
from tfyolo.errors import ModelError
from tfyolo.processes import children_ignore_sigint, describe_exit, die_with_multiprocessing_parent

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


# === A native crash contained in a child process ===
# LiteRT's C++ trusts the flatbuffer: single-field edits of a valid int8 model (an operator input of -1, a zero point
# out of range, a shape or a type edited) end the process by SIGSEGV or SIGABRT, with no message. A command that
# opens a .tflite a user names first loads it and runs it once in a spawned child, the ways tfyolo's readers do; a
# crash there becomes one line, and a clean failure is left for the real work to report in its own words.
CHILD_TIMEOUT_S = 300
# The largest input a child fills with zeros: the image input of the largest model (3 x 8192^2 values).
MAX_CHILD_INPUT_VALUES = 3 * MAX_INPUT_SIZE**2


def run_once_on_zeros(model_content, phase, resolver="AUTO", invoke=True):
    """Loads `model_content` with LiteRT's `resolver`, reads what tfyolo's readers read (tensors, ops, signature) and,
    if `invoke`, runs it once on zeros, reading every output. `phase("loading" / "running")` says where it is."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    phase("loading")
    interpreter = Interpreter(
        model_content=model_content, experimental_op_resolver_type=getattr(OpResolverType, resolver), num_threads=1
    )
    interpreter.allocate_tensors()
    interpreter.get_tensor_details()
    interpreter._get_ops_details()
    interpreter._get_full_signature_list()
    inputs = interpreter.get_input_details()
    if not invoke or sum(int(np.prod(detail["shape"])) for detail in inputs) > MAX_CHILD_INPUT_VALUES:
        return
    phase("running")
    for detail in inputs:
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()
    for detail in interpreter.get_output_details():
        interpreter.get_tensor(detail["index"])


# (who, function of (model bytes, phase)): LiteRT as the readers open it (builtin kernels, no delegate: the graph
# walk), then as evaluation, benchmarks and bundles run it (XNNPACK).
LITERT_STEPS = (
    (
        "the LiteRT interpreter",
        functools.partial(run_once_on_zeros, resolver="BUILTIN_WITHOUT_DEFAULT_DELEGATES", invoke=False),
    ),
    ("the LiteRT interpreter", run_once_on_zeros),
)


def _steps_in_child(model_path, steps, reached):
    """The child: runs each step, recording in `reached` (step index x 2, + 1 once running) where it is; a Python
    error ends a step quietly (the real work raises it again, as one line)."""
    die_with_multiprocessing_parent()
    if os.environ.get("TFYOLO_DEBUG") != "1":  # LiteRT's own complaints would be more lines than the one
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
    content = Path(model_path).read_bytes()
    for index, (_, step) in enumerate(steps):

        def phase(doing, index=index):
            reached.value = 2 * index + (doing == "running")

        try:
            step(content, phase)
        except Exception:
            continue


# Inputs an operator cannot do without ({builtin operator name: input slots}): LiteRT accepts -1 ("no tensor") in any
# slot while parsing, and XNNPACK dereferences it while preparing the op. What it reads there depends on the heap, so
# the child below crashed on a missing CONV_2D filter in some runs and not in others (and the reader after it then
# crashed): this is checked in the flatbuffer itself, deterministically, before any interpreter sees the file.
REQUIRED_INPUTS = {
    "CONV_2D": (0, 1),
    "DEPTHWISE_CONV_2D": (0, 1),
    "FULLY_CONNECTED": (0, 1),
    "TRANSPOSE_CONV": (0, 1, 2),
}


def builtin_code(code):
    """An object-API OperatorCode's builtin operator: schema 3a keeps codes past 127 in `builtinCode` and 127 in the
    old int8 `deprecatedBuiltinCode`, older files only the latter, so the larger of the two is the operator."""
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def builtin_operator_names():
    """{builtin operator code: its name ("CONV_2D")}, from the TFLite schema."""
    from ai_edge_litert import schema_py_generated as schema

    return {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def missing_required_input(model_content):
    """'operator K (OP) of subgraph S has no tensor for its input I' for the first such operator, else None. A
    flatbuffer the Python reader cannot walk is left to the interpreter and the child check."""
    from ai_edge_litert import schema_py_generated as schema

    names = builtin_operator_names()
    try:
        model = schema.Model.GetRootAs(model_content, 0)
        codes = [model.OperatorCodes(index) for index in range(model.OperatorCodesLength())]
        for graph_index in range(model.SubgraphsLength()):
            graph = model.Subgraphs(graph_index)
            for op_index in range(graph.OperatorsLength()):
                operator = graph.Operators(op_index)
                code = codes[operator.OpcodeIndex()]
                name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
                inputs = operator.InputsAsNumpy() if operator.InputsLength() else []
                for slot in REQUIRED_INPUTS.get(name, ()):
                    if slot >= len(inputs) or inputs[slot] < 0:
                        return f"operator {op_index} ({name}) of subgraph {graph_index} has no tensor for input {slot}"
    except Exception:  # a malformed table or offset: what LiteRT makes of it is the child's to find out
        return None
    return None


def check_in_child(model_path, extra_steps=(), timeout=CHILD_TIMEOUT_S):
    """Loads and runs the .tflite at `model_path` once in a spawned child (LITERT_STEPS, then `extra_steps`, e.g.
    TFLite Micro's); returns when the child ended by itself, raises one ModelError line when it crashed or hung."""
    import multiprocessing

    missing = missing_required_input(Path(model_path).read_bytes())
    if missing:
        raise ModelError(f"{model_path}: {missing}; the file is malformed.")
    steps = LITERT_STEPS + tuple(extra_steps)
    context = multiprocessing.get_context("spawn")
    reached = context.Value("i", 0)
    child = context.Process(target=_steps_in_child, args=(str(model_path), steps, reached), daemon=True)
    with children_ignore_sigint():
        child.start()
    try:
        child.join(timeout)
    finally:
        if child.is_alive():  # hung, or this process was interrupted: never left behind
            child.kill()
            child.join()
    who, doing = steps[reached.value // 2][0], ("loading", "running")[reached.value % 2]
    if child.exitcode == -signal.SIGKILL:
        raise ModelError(f"{model_path}: {who} did not finish {doing} it within {timeout} s, or ran out of memory.")
    if child.exitcode is not None and child.exitcode < 0:
        name = describe_exit(child.exitcode).replace("killed by ", "")
        raise ModelError(f"{model_path}: {who} crashed ({name}) {doing} it: the file is malformed.")
