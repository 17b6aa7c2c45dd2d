"""What an Ultralytics detection file holds, read without PyTorch: its tensors by state-dict name, its modules by
index, each Conv's activation and BatchNorm epsilon, class names and training size. One reader for the `.pt`
checkpoint (through the restricted unpickler) and one for the `.onnx` export."""

import ast
import dataclasses
import hashlib
from pathlib import Path
from typing import Mapping, Optional

from tfyolo.config import input_size_problem
from tfyolo.errors import ModelError
from tfyolo.importers.onnx_wire import count_onnx_entries
from tfyolo.importers.task_imports import TASK_IMPORTS
from tfyolo.importers.ultralytics_checkpoint import ModuleRecord, read_checkpoint

# torch activation module -> tfyolo activation name (None: no activation, `act=False`).
TORCH_ACTIVATIONS = {
    "torch.nn.modules.activation.SiLU": "silu",
    "torch.nn.modules.activation.ReLU": "relu",
    "torch.nn.modules.activation.ReLU6": "relu6",
    "torch.nn.modules.activation.Hardswish": "hard_swish",
    "torch.nn.modules.linear.Identity": None,
}
CONV_TYPES = ("ultralytics.nn.modules.conv.Conv", "ultralytics.nn.modules.conv.DWConv")
# The longest ONNX metadata literal parsed: ast.literal_eval took about 540 bytes per character (a 10 MB `names`, 5.4
# GB), so 256 KiB costs at most about 140 MB; 1203 LVIS class names, the most of an Ultralytics dataset, are ~30 KB.
MAX_LITERAL_CHARS = 256 << 10
# Class names as a file records them: at most this many, each a string of at most MAX_NAME_CHARS (they are shown
# and written into every artifact's metadata).
MAX_CLASSES = 10000
MAX_NAME_CHARS = 200


@dataclasses.dataclass(frozen=True)
class UltralyticsSource:
    """An Ultralytics detector's contents.

    Args:
        path: Path of the file.
        format: "ultralytics checkpoint" (.pt) or "ultralytics onnx export".
        state: {state-dict name: numpy array}.
        fused: bool. BatchNorm is folded into each convolution (ONNX): kernels carry a bias, no bn.* tensors.
        modules: {index: short module type ("Conv", "C3k2", "Detect", ...)}, or None where the file does not say
            (ONNX keeps tensor names, not module types).
        activations: {Conv prefix ("model.9.cv1"): activation name or None}, read from the file itself.
        batch_norm_eps: {Conv prefix: the BatchNorm's epsilon} (a checkpoint records it; an export folded it).
        names: list of class names, or None.
        imgsz: int or None. The training input size.
        version: str or None. The Ultralytics version that wrote it.
        train_data: str or None. The data.yaml its training named (a checkpoint's train_args), as written there: a
            path on the machine that trained it, recorded as provenance and never opened.
        task: str. What the model predicts (a key of `TASK_IMPORTS`): from the class a checkpoint pickles, or the
            `task` an export's metadata names.
    """

    path: Path
    format: str
    state: Mapping
    fused: bool
    modules: Optional[Mapping[int, str]]
    activations: Mapping[str, Optional[str]]
    batch_norm_eps: Mapping[str, float]
    names: Optional[list]
    imgsz: Optional[int]
    version: Optional[str]
    train_data: Optional[str] = None
    task: str = "detect"

    @property
    def module_indices(self):
        """The module indices that hold tensors, in order."""
        return sorted({int(name.split(".")[1]) for name in self.state if name.startswith("model.")})

    def has(self, name):
        return name in self.state

    def tensor_shape(self, name):
        """The shape of tensor `name`; a file that lacks it is refused in one line (a damaged file can drop any)."""
        if name not in self.state:
            raise ModelError(f"{self.path}: tensor {name} is missing; not the architecture its layout says.")
        return self.state[name].shape

    def provenance(self):
        return {
            "kind": "ultralytics import",
            "path": str(self.path),
            "sha256": hashlib.sha256(self.path.read_bytes()).hexdigest(),
            "format": self.format,
            "ultralytics_version": self.version,
            "train_data": self.train_data,
        }


def read_source(path):
    """The UltralyticsSource of a `.pt` checkpoint or `.onnx` export."""
    path = Path(path)
    readers = {".pt": _from_checkpoint, ".onnx": _from_onnx}
    if path.suffix not in readers:
        raise ModelError(f"{path}: expected an Ultralytics .pt checkpoint or .onnx export, received {path.suffix!r}.")
    return readers[path.suffix](path)


def _short_type(type_name):
    return type_name.rsplit(".", 1)[-1]


def _conv_records(record, prefix, seen):
    """(prefix, Conv record) of `record` and of every Ultralytics Conv / DWConv below it, parents first, each record
    once across the walks sharing `seen` (`ModuleRecord.records`)."""
    return [
        (f"{prefix}.{name}" if name else prefix, child)
        for name, child in record.records(seen)
        if child.type_name in CONV_TYPES
    ]


def _from_checkpoint(path):
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, dict) or not (checkpoint.get("ema") or checkpoint.get("model")):
        raise ModelError(f"{path}: holds no model (expected an Ultralytics checkpoint dict with 'model' or 'ema').")
    record = checkpoint.get("ema") or checkpoint["model"]  # EMA weights are the ones Ultralytics validates
    found = getattr(record, "type_name", type(record).__name__)
    task = next((plan.task for plan in TASK_IMPORTS.values() if found.endswith(plan.model_class)), None)
    if task is None:
        classes = ", ".join(plan.model_class for plan in TASK_IMPORTS.values())
        raise ModelError(f"{path}: holds a {found}, not a model tfyolo imports ({classes}).")
    layers = record.children().get("model")
    if not isinstance(layers, ModuleRecord):
        raise ModelError(f"{path}: its model has no layer list.")
    modules, activations, epsilons, seen = {}, {}, {}, set()
    for index, layer in layers.children().items():
        if not (isinstance(layer, ModuleRecord) and str(index).isdigit()):
            raise ModelError(f"{path}: its layer list holds {index!r}, not a module.")
        modules[int(index)] = _short_type(layer.type_name)
        for prefix, conv in _conv_records(layer, f"model.{index}", seen):
            activation = conv.children().get("act")
            kind = getattr(activation, "type_name", None)
            if kind not in TORCH_ACTIVATIONS:
                raise ModelError(f"{path}: {prefix} uses activation {kind}; tfyolo builds {sorted(TORCH_ACTIVATIONS)}.")
            activations[prefix] = TORCH_ACTIVATIONS[kind]
            batch_norm = conv.children().get("bn")
            epsilon = getattr(batch_norm, "eps", None)
            if isinstance(epsilon, float):
                epsilons[prefix] = epsilon
    train_args = checkpoint.get("train_args") if isinstance(checkpoint.get("train_args"), dict) else {}
    train_data = train_args.get("data")
    return UltralyticsSource(
        path=path,
        format="ultralytics checkpoint",
        state=record.state_dict(),
        fused=False,
        modules=modules,
        activations=activations,
        batch_norm_eps=epsilons,
        names=_class_names(record.__dict__.get("names"), path, "the model's names"),
        imgsz=_input_size(train_args.get("imgsz"), path, "train_args.imgsz"),
        version=checkpoint.get("version"),
        # Bounded: it is only ever shown, in the line that asks for --data.
        train_data=train_data[:200] if isinstance(train_data, str) else None,
        task=task,
    )


def _onnx_activations(graph):
    """{Conv prefix: activation} from an export's graph: what consumes each `model.*.conv.weight` convolution's output
    (Sigmoid and Mul: SiLU; Relu; Clip 0..6: ReLU6; HardSwish; nothing of these: no activation)."""
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    activations = {}
    for node in graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or not node.input[1].endswith(".conv.weight"):
            continue
        output = node.output[0]
        after = {consumer.op_type: consumer for consumer in consumers.get(output, [])}
        if "Sigmoid" in after and any(
            output in mul.input and after["Sigmoid"].output[0] in mul.input
            for mul in consumers.get(after["Sigmoid"].output[0], [])
            if mul.op_type == "Mul"
        ):
            activation = "silu"
        else:
            activation = next(
                (
                    name
                    for op, name in (("Relu", "relu"), ("Clip", "relu6"), ("HardSwish", "hard_swish"))
                    if op in after
                ),
                None,
            )
        activations[node.input[1][: -len(".conv.weight")]] = activation
    return activations


def _from_onnx(path):
    """An Ultralytics ONNX export: initializers keep the module names (`model.2.cv1.conv.weight`), BatchNorm is
    folded into each convolution's bias, and the class names and imgsz are in the metadata properties."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ModelError(f"{path}: importing ONNX needs the onnx package.")
    count_onnx_entries(path)  # before the parse allocates what the file declares
    try:
        graph_model = onnx.load(str(path))
    except Exception as error:  # onnx raises protobuf's DecodeError, ValueError or its own errors for a bad file
        raise ModelError(f"{path}: not a readable ONNX model ({type(error).__name__}: {error}).")
    _refuse_undecodable_names(graph_model, path)
    properties = {prop.key: prop.value for prop in graph_model.metadata_props}
    task = properties.get("task", "detect")
    if task not in TASK_IMPORTS:
        raise ModelError(f"{path}: an Ultralytics {task[:60]} model; tfyolo imports {', '.join(TASK_IMPORTS)}.")
    # Weights keep their module names; the other initializers are graph constants (anchor grids, shapes).
    state = {
        item.name: _onnx_array(numpy_helper, item, path)
        for item in graph_model.graph.initializer
        if item.name.startswith("model.")
    }
    if "model.0.conv.weight" not in state:
        raise ModelError(f"{path}: no Ultralytics module names among its initializers; not an Ultralytics export.")
    names = _metadata_literal(properties, "names", path)
    imgsz = _metadata_literal(properties, "imgsz", path)
    return UltralyticsSource(
        path=path,
        format="ultralytics onnx export",
        state=state,
        fused=True,
        modules=None,
        activations=_onnx_activations(graph_model.graph),
        batch_norm_eps={},
        names=_class_names(names, path, "metadata names"),
        imgsz=_input_size(imgsz, path, "metadata imgsz"),
        version=properties.get("version"),
        task=task,
    )


def _onnx_array(numpy_helper, tensor, path):
    """An initializer's values; onnx reads a data type it does not know or data that does not fill the declared dims
    as KeyError / ValueError."""
    try:
        return numpy_helper.to_array(tensor)
    except (KeyError, ValueError, TypeError) as error:
        raise ModelError(
            f"{path}: initializer {tensor.name[:80]!r} does not hold the values its data type and dims declare "
            f"({type(error).__name__})."
        )


def _refuse_undecodable_names(graph_model, path):
    """Protobuf hands a string field that is not UTF-8 back as bytes rather than refusing the file: every name this
    reader compares (node types, inputs and outputs, initializer names, metadata) must be text."""
    graph = graph_model.graph
    names = [item.name for item in graph.initializer]
    names += [prop.key for prop in graph_model.metadata_props] + [prop.value for prop in graph_model.metadata_props]
    for node in graph.node:
        names += [node.op_type, *node.input, *node.output]
    if not all(isinstance(name, str) for name in names):
        raise ModelError(f"{path}: not a readable ONNX model (a name that is not UTF-8 text).")


def _metadata_literal(properties, key, path):
    """The Python literal an export's metadata holds under `key` (Ultralytics writes str(value)), or None; its text is
    bounded before it is parsed."""
    text = properties.get(key)
    if text is None:
        return None
    if len(text) > MAX_LITERAL_CHARS:
        raise ModelError(f"{path}: metadata {key} is {len(text):,} characters; expected at most {MAX_LITERAL_CHARS:,}.")
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ModelError(f"{path}: metadata {key} is not a Python literal, as Ultralytics writes it.")


def _input_size(value, path, field):
    """The training size a file records (a side, or [height, width] of which the height is taken), bounded as
    --imgsz is; None if it records none."""
    if isinstance(value, (list, tuple)) and value:
        value = value[0]
    if value is None:
        return None
    problem = input_size_problem(value)
    if problem:
        raise ModelError(f"{path}: {field} is not a size a model can take; expected {problem}.")
    return value


def _class_names(value, path, field):
    """Class names as a file records them (a list, or {0: name, 1: name, ...}) as a list of strings; None if it
    records none. Anything else is refused in one line, not an 'unexpected' error later."""
    if value is None or (isinstance(value, (list, tuple, dict)) and not value):
        return None
    if isinstance(value, dict):
        if not all(type(key) is int for key in value) or set(value) != set(range(len(value))):
            raise ModelError(f"{path}: {field} is a dict whose keys are not 0..{len(value) - 1}.")
        value = [value[index] for index in range(len(value))]
    if not isinstance(value, (list, tuple)) or len(value) > MAX_CLASSES:
        raise ModelError(f"{path}: {field} is not a list of at most {MAX_CLASSES:,} class names.")
    if not all(isinstance(name, str) and len(name) <= MAX_NAME_CHARS for name in value):
        raise ModelError(f"{path}: {field} holds a name that is not a string of at most {MAX_NAME_CHARS} characters.")
    return list(value)
