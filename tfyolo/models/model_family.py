"""What a model family is, as data: its scales, its layer roles and what its head predicts. Each family's folder
holds one of these (`<family>_presets.py`) beside its builder (`<family>_detector.py`); nothing else in tfyolo knows
a family's layer names."""

import dataclasses
import math
from typing import Mapping, Optional, Tuple

SECTIONS = ("backbone", "neck", "head")
# The heads a Detect module can carry and how each one's predictions become detections: the one-to-many head
# (YOLOv8, YOLO11, YOLO26's auxiliary) predicts several boxes per object and needs NMS; the one-to-one head
# (YOLO26's end-to-end) is trained to predict one box per object, so a top-k over the best class scores suffices.
POSTPROCESS = {"one2many": "nms", "one2one": "topk"}
# A model holding every head of its family (training optimises them together); it is evaluated by its first one.
ALL_HEADS = "both"


@dataclasses.dataclass(frozen=True)
class Scale:
    """One row of an Ultralytics yaml's `scales` table: [depth, width, max_channels]."""

    depth: float
    width: float
    max_channels: int

    def channels(self, base):
        """`base` channels at this width, rounded up to a multiple of 8 (Ultralytics' make_divisible)."""
        return int(math.ceil(min(base, self.max_channels) * self.width / 8) * 8)

    def repeats(self, base):
        """A block's repeats at this depth (parse_model: repeats of 1 are never scaled)."""
        return max(round(base * self.depth), 1) if base > 1 else base


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    """A detector family.

    Args:
        name: str. The family's name in configs, metadata and `--family`.
        scales: mapping of scale name ("n" ... "x") to `Scale`.
        sections: tuple of (layer-name prefix, section) pairs, the first match wins: which layers are backbone, neck
            and head (`--freeze backbone`, staged QAT, the sensitivity sections). The last prefix is "".
        reg_max: int or None. Bins of the box distribution: fixed by the family (YOLO26's 1: plain distances), or
            None for a DFL family whose configs choose it (>= 2).
        default_reg_max: int. reg_max of a config that does not say.
        heads: tuple of `POSTPROCESS` keys. The heads its Detect carries, the default inference head first.
        ultralytics_yaml: str. The Ultralytics model yaml its scales and layout come from.
        description: str. One line for help texts.
        int8_ranges: str. The calibration range statistic its ai-edge-quantizer int8 takes when a recipe names none
            (`tfyolo.quantization.recipe.RANGE_STATISTICS`): the one measured best for the family on images its
            COCO model never saw (docs/quantization.md).
    """

    name: str
    scales: Mapping[str, Scale]
    sections: Tuple[Tuple[str, str], ...]
    reg_max: Optional[int] = None
    default_reg_max: int = 16
    heads: Tuple[str, ...] = ("one2many",)
    ultralytics_yaml: str = ""
    description: str = ""
    int8_ranges: str = "outputs_mse"

    def __post_init__(self):
        if not self.sections or self.sections[-1][0] != "" or {s for _, s in self.sections} - set(SECTIONS):
            raise ValueError(f"family {self.name}: sections must end with a catch-all '' prefix: {self.sections}")
        if not self.heads or set(self.heads) - set(POSTPROCESS):
            raise ValueError(f"family {self.name}: heads must be among {sorted(POSTPROCESS)}: {self.heads}")

    @property
    def head_choices(self):
        """What `ModelConfig.head` may be: one of the heads, or all of them together where there are several."""
        return self.heads + ((ALL_HEADS,) if len(self.heads) > 1 else ())

    def section_of(self, layer_name):
        """ "backbone", "neck" or "head" for a layer of this family's detectors."""
        return next(section for prefix, section in self.sections if layer_name.startswith(prefix))

    def layers_in(self, model, section):
        """Names of `model`'s layers in `section`."""
        return [layer.name for layer in model.layers if self.section_of(layer.name) == section]
