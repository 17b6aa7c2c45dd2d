"""Ultralytics detection and segmentation checkpoints and ONNX exports -> a tfyolo model with the same weights,
computing the same thing, for every family in `IMPORTS` and every task in `TASK_IMPORTS`.

The Keras graph is tfyolo's own (flat, plain layers, so tfmot can wrap it), built with PyTorch's symmetric padding
for the strided convolutions. The file's family and scale are read from what it holds (its module kinds or marker
tensors, the widths and depths of its tensors), never assumed; each module is filled by the filler of its kind
under the block name of the family's layout. Nothing is returned unless every Keras variable was filled and every
source tensor was used (the fixed DFL projection, 0..reg_max-1, is arithmetic in tfyolo's decode).
"""

import numpy as np

from tfyolo.errors import ModelError
from tfyolo.importers.family_import import WEIGHTLESS
from tfyolo.importers.task_imports import TASK_IMPORTS
from tfyolo.importers.ultralytics_source import read_source
from tfyolo.importers.weight_filler import FILLERS, WeightFiller
from tfyolo.importers.yolo11_import import YOLO11_IMPORT
from tfyolo.importers.yolo26_import import YOLO26_IMPORT
from tfyolo.importers.yolov8_import import YOLOV8_IMPORT
from tfyolo.models.detector_metadata import detector_metadata
from tfyolo.models.families import model_family
from tfyolo.models.model_config import ModelConfig
from tfyolo.models.model_family import ALL_HEADS
from tfyolo.models.tasks import model_task
from tfyolo.models.yolo_detector import build_yolo_detector

IMPORTS = (YOLOV8_IMPORT, YOLO11_IMPORT, YOLO26_IMPORT)
DEFAULT_IMGSZ = 640
HEAD_NAMES = {"one2many": "the one-to-many head (NMS)", "one2one": "the one-to-one head (top-k, no NMS)"}


def family_import_for(source):
    """The FamilyImport whose family the file is, its layout ending in the head of the file's task; a clear refusal
    naming what the file holds otherwise."""
    task = TASK_IMPORTS[source.task]
    candidates = [candidate.with_head(task.head_kind_of(candidate.family)) for candidate in IMPORTS]
    matching = [candidate for candidate in candidates if candidate.matches(source)]
    if len(matching) == 1:
        return matching[0]
    held = sorted(set(source.modules.values())) if source.modules else f"modules {source.module_indices[:3]}..."
    raise ModelError(
        f"{source.path}: not a {model_task(task.task).noun} model of a family tfyolo imports "
        f"({', '.join(i.family for i in IMPORTS)}); it holds {held}. YOLOv5, pose and OBB heads are not supported."
    )


def choose_head(source, detect, family, head):
    """(the head to import, the heads the file holds): `head` if the file holds it (ALL_HEADS: every head of the
    family), otherwise the family's default inference head, or the one head an export kept."""
    modules = TASK_IMPORTS[source.task].head_modules
    held = [name for name in family.heads if source.has(f"{detect}.{modules[name][0]}.0.2.weight")]
    if not held:
        raise ModelError(f"{source.path}: its Detect module holds no prediction branch tfyolo knows.")
    if head is None:
        return (family.heads[0] if family.heads[0] in held else held[0]), held
    wanted = family.heads if head == ALL_HEADS else (head,)
    missing = [name for name in wanted if name not in held]
    if head not in family.head_choices or missing:
        raise ModelError(
            f"{source.path}: --head {head} asks for {', '.join(HEAD_NAMES.get(m, m) for m in missing or [head])}, "
            f"which this {family.name} file does not hold; it holds {', '.join(HEAD_NAMES[h] for h in held)}."
        )
    return head, held


def import_weights(path, input_size=None, head=None):
    """Imports an Ultralytics detector or segmenter from its `.pt` checkpoint or `.onnx` export; returns (Keras model,
    its metadata dict: `tfyolo.models.detector_metadata.detector_metadata` with the source's provenance).

    head: which of a YOLO26's heads the model ends in ("one2one", "one2many" or "both"); None: the family's default
    inference head where the file holds it (YOLO26: the one-to-one), else the one it holds. A head the file holds
    but the model does not take is named in the metadata (`source.left_out`), never silently dropped."""
    source = read_source(path)
    plan = family_import_for(source)
    scales = plan.scale_of(source)
    if len(scales) != 1:
        raise ModelError(
            f"{source.path}: its tensors fit {scales or 'none'} of the {plan.family} scales; not a {plan.family} "
            "this tfyolo can rebuild."
        )
    detect = f"model.{plan.detect_index}"
    family = model_family(plan.family)
    head, held = choose_head(source, detect, family, head)
    task = TASK_IMPORTS[source.task]
    box_module, class_module = task.head_modules[held[0]][:2]
    num_classes = int(source.tensor_shape(f"{detect}.{class_module}.0.2.weight")[0])
    reg_max = int(source.tensor_shape(f"{detect}.{box_module}.0.2.weight")[0]) // 4
    activation = source.activations.get("model.0", "silu")
    if activation is None:
        raise ModelError(f"{source.path}: its stem convolution has no activation; not a detector tfyolo builds.")
    config = ModelConfig(
        num_classes=num_classes,
        family=plan.family,
        scale=scales[0],
        activation=activation,
        input_size=int(input_size or source.imgsz or DEFAULT_IMGSZ),
        reg_max=reg_max,
        padding="symmetric",
        head=head,
        task=source.task,
    )
    model = build_yolo_detector(config)
    imported = family.heads if head == ALL_HEADS else (head,)
    filler = WeightFiller(model, source, heads={name: task.head_modules[name] for name in imported})
    for index, (kind, block) in sorted(plan.layout.items()):
        if kind not in WEIGHTLESS:
            FILLERS[kind](filler, f"model.{index}", block)
    projection = f"{detect}.dfl.conv.weight"
    if source.has(projection) and not np.array_equal(source.state[projection].reshape(-1), np.arange(reg_max)):
        raise ModelError(
            f"{source.path}: {projection} is not the fixed projection 0..{reg_max - 1} of tfyolo's decode."
        )
    left_out = [f"{detect}.{module}" for name in held if name not in imported for module in task.head_modules[name]]
    training_left_out = _training_only_left_out(source, detect, task, head)
    left_out += [f"{detect}.{module}" for module in training_left_out]
    filler.check_complete(fixed=(projection,), left_out=left_out)
    names = source.names or [f"class{index}" for index in range(num_classes)]
    provenance = source.provenance()
    if left_out:
        provenance["left_out"] = {
            "modules": left_out,
            "why": f"{', '.join(_left_out_parts(held, imported, training_left_out))} not imported (--head {head}; "
            f"--head {ALL_HEADS} keeps every head)",
        }
    return model, detector_metadata(config, names, source=provenance)


def _training_only_left_out(source, detect, task, head):
    """The head module's training-only children the file holds and the model, not in its training form, does not
    take (YOLO26-seg's semantic branch outside --head both)."""
    if head == ALL_HEADS:
        return []
    return [module for module in task.training_only if any(k.startswith(f"{detect}.{module}.") for k in source.state)]


def _left_out_parts(held, imported, training_left_out):
    parts = [HEAD_NAMES[name] for name in held if name not in imported]
    return parts + [f"the training-only {module}" for module in training_left_out]
