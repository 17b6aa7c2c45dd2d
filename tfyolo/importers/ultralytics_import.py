"""Ultralytics detection checkpoints and ONNX exports -> a tfyolo detector with the same weights, computing the same
thing, for every family in `IMPORTS`.

The Keras graph is tfyolo's own (flat, plain layers, so tfmot can wrap it), built with PyTorch's symmetric padding
for the strided convolutions. The file's family and scale are read from what it holds (its module kinds or marker
tensors, the widths and depths of its tensors), never assumed; each module is filled by the filler of its kind
under the block name of the family's layout. Nothing is returned unless every Keras variable was filled and every
source tensor was used (the fixed DFL projection, 0..reg_max-1, is arithmetic in tfyolo's decode).
"""

import numpy as np

from tfyolo.errors import ModelError
from tfyolo.importers.family_import import WEIGHTLESS
from tfyolo.importers.ultralytics_source import read_source
from tfyolo.importers.weight_filler import FILLERS, WeightFiller
from tfyolo.importers.yolo11_import import YOLO11_IMPORT
from tfyolo.importers.yolov8_import import YOLOV8_IMPORT
from tfyolo.models.detector_metadata import detector_metadata
from tfyolo.models.model_config import ModelConfig
from tfyolo.models.yolo_detector import build_yolo_detector

IMPORTS = (YOLOV8_IMPORT, YOLO11_IMPORT)
DEFAULT_IMGSZ = 640


def family_import_for(source):
    """The FamilyImport whose family the file is; a clear refusal naming what the file holds otherwise."""
    matching = [candidate for candidate in IMPORTS if candidate.matches(source)]
    if len(matching) == 1:
        return matching[0]
    held = sorted(set(source.modules.values())) if source.modules else f"modules {source.module_indices[:3]}..."
    raise ModelError(
        f"{source.path}: not a detection model of a family tfyolo imports ({', '.join(i.family for i in IMPORTS)}); "
        f"it holds {held}. YOLOv5, segmentation, pose and OBB heads are not supported."
    )


def import_weights(path, input_size=None):
    """Imports an Ultralytics detector from its `.pt` checkpoint or `.onnx` export; returns (Keras detector, its
    metadata dict: `tfyolo.models.detector_metadata.detector_metadata` with the source's provenance)."""
    source = read_source(path)
    plan = family_import_for(source)
    scales = plan.scale_of(source)
    if len(scales) != 1:
        raise ModelError(
            f"{source.path}: its tensors fit {scales or 'none'} of the {plan.family} scales; not a {plan.family} "
            "this tfyolo can rebuild."
        )
    detect = f"model.{plan.detect_index}"
    num_classes = int(source.state[f"{detect}.cv3.0.2.weight"].shape[0])
    reg_max = int(source.state[f"{detect}.cv2.0.2.weight"].shape[0]) // 4
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
    )
    model = build_yolo_detector(config)
    filler = WeightFiller(model, source)
    for index, (kind, block) in sorted(plan.layout.items()):
        if kind not in WEIGHTLESS:
            FILLERS[kind](filler, f"model.{index}", block)
    projection = f"{detect}.dfl.conv.weight"
    if source.has(projection) and not np.array_equal(source.state[projection].reshape(-1), np.arange(reg_max)):
        raise ModelError(
            f"{source.path}: {projection} is not the fixed projection 0..{reg_max - 1} of tfyolo's decode."
        )
    filler.check_complete(fixed=(projection,))
    names = source.names or [f"class{index}" for index in range(num_classes)]
    return model, detector_metadata(config, names, source=source.provenance())
