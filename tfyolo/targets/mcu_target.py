"""Microcontrollers through TFLite Micro, the interpreter they run, on this machine: does the artifact load (every
operator registered), how large a tensor arena it needs, and do its outputs match LiteRT's.

Parity bound. TFLite Micro's kernels are ports of TFLite's reference kernels: the same integer multipliers, shifts
and rounding, so on the same int8 input LiteRT with its reference kernels (`OpResolverType.BUILTIN_REF`) computes
the same int8 values, and the bound against it is `PARITY_BOUND_STEPS` = 0 steps of each output's quantization.
XNNPACK (LiteRT's default on CPUs) requantizes in float32 instead of fixed point, which moves an intermediate
value by one step now and then, and such steps travel through the layers after it: its difference is measured and
reported beside, in output steps, but no bound follows from the arithmetic, so none is asserted.
"""

import contextlib
import functools
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass

import numpy as np

from tfyolo.errors import ConfigError, ModelError
from tfyolo.targets.npu_target import INSTALL_HINT
from tfyolo.tflite_runtime import run_once_on_zeros

PARITY_BOUND_STEPS = 0
# Arena sizes are searched to this granularity (TFLite Micro aligns its allocations to 16 bytes).
ARENA_ALIGNMENT = 16
# TFLite Micro holds an arena's size in a 32-bit int: asking 2 GiB or more crashes the process (64 x a 32.5 MB model
# + 64 MiB did, SIGSEGV). Nothing asks past this bound; a microcontroller's RAM is a few MB (tens with external
# memory), so a model that needs more, or a file larger than it, is refused in one line instead.
MAX_ARENA_BYTES = 1 << 30
MAX_MODEL_BYTES = MAX_ARENA_BYTES
# What TFLite Micro prints for an operator it has no kernel for.
_MISSING_KERNEL = re.compile(r"Didn't find op for builtin opcode '(\w+)'")


@dataclass(frozen=True)
class McuReport:
    """What TFLite Micro says of one artifact.

    arena_bytes: the smallest tensor arena it allocates in (to ARENA_ALIGNMENT bytes).
    missing_operators: operators TFLite Micro has no kernel for (the model does not load while any is listed).
    steps_vs_reference / steps_vs_xnnpack: per output name, the largest difference from LiteRT's outputs in steps of
        that output's quantization (None for a float output, whose difference is not counted in steps).
    offset_buffers: constant buffers the file addresses by offset past its flatbuffer (the layout converters use
        for models over 2 GB, and Ultralytics' LiteRT exports use at any size); a model that diverges and holds
        them is likely read wrong by this TFLite Micro.
    first_divergence: when parity fails, the first operator whose output differs from LiteRT's reference kernels.
    """

    arena_bytes: int
    missing_operators: list
    steps_vs_reference: dict
    steps_vs_xnnpack: dict
    inputs_compared: int
    seconds_per_call: float
    offset_buffers: int = 0
    bound_steps: int = PARITY_BOUND_STEPS
    first_divergence: dict = None

    @property
    def parity(self):
        steps = [value for value in self.steps_vs_reference.values() if value is not None]
        return bool(steps) and not self.missing_operators and max(steps) <= self.bound_steps

    def to_dict(self):
        return dict(asdict(self), parity=self.parity)


def require_tflite_micro():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise ConfigError(f"microcontroller targets need TFLite Micro: {INSTALL_HINT}.") from None
    return runtime


@contextlib.contextmanager
def _native_stderr():
    """Collects what TFLite Micro's C++ prints on descriptor 2 (allocation failures, missing kernels) instead of
    letting it reach the terminal; yields a function that returns the text so far."""
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:

            def text():
                captured.seek(0)
                return captured.read().decode(errors="replace")

            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _interpreter(runtime, model_content, arena_bytes, preserve=False):
    config = (
        runtime.InterpreterConfig.kPreserveAllTensors if preserve else runtime.InterpreterConfig.kAllocationRecording
    )
    return runtime.Interpreter.from_bytes(model_content, arena_size=arena_bytes, intrepreter_config=config)


def _roomy_arena(model_content, spare):
    """An arena with room to spare for loading the model (64 x its file + `spare`), at most MAX_ARENA_BYTES; a file
    past MAX_MODEL_BYTES is refused first."""
    if len(model_content) > MAX_MODEL_BYTES:
        raise ModelError(
            f"a model of {len(model_content):,} bytes is not for a microcontroller; TFLite Micro is checked on models "
            f"of at most {MAX_MODEL_BYTES:,} bytes (a microcontroller holds a few MB)."
        )
    return min(64 * len(model_content) + spare, MAX_ARENA_BYTES)


def missing_operators(model_content):
    """Operators of the model TFLite Micro has no kernel for, from what it prints while loading with room to spare."""
    runtime = require_tflite_micro()
    arena = _roomy_arena(model_content, 1 << 26)
    with _native_stderr() as printed:
        try:
            _interpreter(runtime, model_content, arena)
        except RuntimeError:
            missing = sorted(set(_MISSING_KERNEL.findall(printed())))
            if missing:
                return missing
            raise ModelError(
                f"TFLite Micro cannot load the model in a {arena:,}-byte arena: {' '.join(printed().split())[-300:]}"
            ) from None
    return []


def smallest_arena(model_content):
    """The smallest tensor arena (bytes, to ARENA_ALIGNMENT) in which TFLite Micro allocates the model, by bisection
    between a size that fails and one that works (each try allocates only, nothing runs)."""
    runtime = require_tflite_micro()

    def fits(size):
        try:
            _interpreter(runtime, model_content, size)
            return True
        except RuntimeError:
            return False

    low, high = 0, min(max(1 << 20, 4 * len(model_content)), MAX_ARENA_BYTES)
    with _native_stderr():
        while not fits(high):
            if high >= MAX_ARENA_BYTES:
                raise ModelError(
                    f"TFLite Micro cannot allocate the model in a {MAX_ARENA_BYTES:,}-byte arena, the most tfyolo asks "
                    "for (a microcontroller holds a few MB)."
                )
            low, high = high, min(2 * high, MAX_ARENA_BYTES)
        while high - low > ARENA_ALIGNMENT:
            middle = (low + high) // 2 // ARENA_ALIGNMENT * ARENA_ALIGNMENT
            low, high = (low, middle) if fits(middle) else (middle, high)
    return high


def output_steps(interpreter):
    """Per output index: the quantization step its values move by (its own scale for an integer output, the scale
    of the DEQUANTIZE input for a float output made from integers), or None for a float output from float
    compute."""
    tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    producers = {output: op for op in interpreter._get_ops_details() for output in op["outputs"]}
    steps = {}
    for detail in interpreter.get_output_details():
        scale, _ = detail["quantization"]
        if scale == 0 and producers.get(detail["index"], {}).get("op_name") == "DEQUANTIZE":
            scale, _ = tensors[producers[detail["index"]]["inputs"][0]]["quantization"]
        steps[detail["index"]] = scale or None
    return steps


def _litert(model_content, resolver):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_content=model_content, experimental_op_resolver_type=getattr(OpResolverType, resolver), num_threads=1
    )
    interpreter.allocate_tensors()
    return interpreter


def _run_litert(interpreter, tensor):
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    interpreter.invoke()
    return [interpreter.get_tensor(detail["index"]) for detail in interpreter.get_output_details()]


def _difference_in_steps(expected, received, step):
    difference = float(np.max(np.abs(expected.astype(np.float64) - received.astype(np.float64))))
    if step is None:
        return None
    # Integer outputs differ by whole steps; a dequantized one by step multiples up to float rounding.
    return int(round(difference / step)) if np.issubdtype(expected.dtype, np.floating) else int(difference)


def check_on_mcu(model_content, inputs):
    """Runs the model in TFLite Micro on each input tensor (as the model takes it, e.g. a bundle's golden inputs)
    and compares its outputs with LiteRT's reference kernels and with XNNPACK. Returns McuReport."""
    runtime = require_tflite_micro()
    if not inputs:
        raise ConfigError("the TFLite Micro check needs at least one input tensor (golden inputs or images).")
    missing = missing_operators(model_content)
    if missing:
        return McuReport(0, missing, {}, {}, 0, 0.0)
    arena = smallest_arena(model_content)
    reference, xnnpack = _litert(model_content, "BUILTIN_REF"), _litert(model_content, "AUTO")
    steps = output_steps(reference)
    names = _output_names(reference)
    worst = {"reference": {}, "xnnpack": {}}
    started = time.perf_counter()
    micro = _interpreter(runtime, model_content, arena)
    for tensor in inputs:
        micro.set_input(tensor, 0)
        micro.invoke()
        outputs = [micro.get_output(index) for index in range(len(steps))]
        for kind, litert in (("reference", reference), ("xnnpack", xnnpack)):
            for (index, step), expected, received in zip(steps.items(), _run_litert(litert, tensor), outputs):
                measured = _difference_in_steps(expected, received, step)
                previous = worst[kind].get(names[index], 0)
                worst[kind][names[index]] = None if measured is None else max(previous or 0, measured)
        micro.reset()
    seconds = (time.perf_counter() - started) / len(inputs)
    report = McuReport(
        arena, [], worst["reference"], worst["xnnpack"], len(inputs), seconds, offset_buffers(model_content)
    )
    if not report.parity:
        report = McuReport(**{**asdict(report), "first_divergence": first_divergence(model_content, inputs[0])})
    return report


def check_on_mcu_with_zeros(model_content, phase):
    """`check_on_mcu` itself, on one input of zeros (a step of `tfyolo.tflite_runtime.check_in_child`): every load,
    arena tried and run the real check makes, the inputs aside."""
    runtime = require_tflite_micro()
    phase("loading")
    with _native_stderr():
        detail = _interpreter(runtime, model_content, _roomy_arena(model_content, 1 << 26)).get_input_details(0)
    phase("running")
    check_on_mcu(model_content, [np.zeros(detail["shape"], detail["dtype"])])


# What `check_on_mcu` runs beyond LiteRT's XNNPACK, for `check_in_child`: LiteRT's reference kernels, TFLite Micro.
MCU_STEPS = (
    ("LiteRT's reference kernels", functools.partial(run_once_on_zeros, resolver="BUILTIN_REF")),
    ("TFLite Micro", check_on_mcu_with_zeros),
)


def offset_buffers(model_content):
    """How many of the model's buffers are stored by offset after the flatbuffer instead of inside it."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(model_content, 0)
    return sum(1 for index in range(model.BuffersLength()) if model.Buffers(index).Offset() > 1)


def _output_names(interpreter):
    """Per output index, the signature's name for it (else the tensor's own)."""
    from tfyolo.tflite_runtime import signature_outputs

    by_index = {index: name for name, index in signature_outputs(interpreter).items()}
    return {
        detail["index"]: by_index.get(detail["index"], detail["name"]) for detail in interpreter.get_output_details()
    }


def first_divergence(model_content, tensor):
    """The first operator (in execution order) whose output in TFLite Micro differs from LiteRT's reference kernels
    on `tensor`: {"index", "operator", "output", "steps"}, or None when every tensor agrees."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    runtime = require_tflite_micro()
    reference = Interpreter(
        model_content=model_content,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    reference.allocate_tensors()
    _run_litert(reference, tensor)
    with _native_stderr():
        micro = _interpreter(runtime, model_content, _roomy_arena(model_content, 1 << 28), preserve=True)
    micro.set_input(tensor, 0)
    micro.invoke()
    tensors = {detail["index"]: detail for detail in reference.get_tensor_details()}
    for op in reference._get_ops_details():
        for index in op["outputs"]:
            expected = reference.get_tensor(index)
            received = np.asarray(micro.GetTensor(int(index), 0)["tensor_data"])
            if received.size != expected.size:
                continue
            scale = tensors[index]["quantization"][0] or None
            steps = _difference_in_steps(expected, received.reshape(expected.shape), scale)
            if steps:
                return {
                    "index": int(op["index"]),
                    "operator": op["op_name"],
                    "output": tensors[index]["name"],
                    "steps": steps,
                    "inputs_read_differently": [
                        tensors[source]["name"]
                        for source in op["inputs"]
                        if source >= 0 and not _same_tensor(reference, micro, source)
                    ],
                }
    return None


def _same_tensor(reference, micro, index):
    expected = reference.get_tensor(index)
    received = np.asarray(micro.GetTensor(int(index), 0)["tensor_data"])
    return received.size != expected.size or np.array_equal(received.reshape(expected.shape), expected)
