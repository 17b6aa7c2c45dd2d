"""What defines a detector's architecture: a typed, frozen record, validated once when built."""

import dataclasses
from typing import Any, Mapping, Optional

from tfyolo.config import ACTIVATION_NAMES, MAX_INPUT_SIZE, PADDINGS, STRIDES, strict_fields
from tfyolo.errors import ConfigError
from tfyolo.models.families import FAMILIES, model_family
from tfyolo.models.model_family import ALL_HEADS, POSTPROCESS
from tfyolo.models.tasks import DEFAULT_TASK, TASKS, model_task


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What defines a detector's architecture.

    Args:
        num_classes: int. Number of object classes.
        family: str. One of `tfyolo.models.families.FAMILIES` ("yolov8", "yolo11", "yolo26").
        scale: str. One of the family's scales ("n", "s", "m", "l", "x").
        activation: str. One of `ACTIVATION_NAMES`; "silu" is Ultralytics' own.
        input_size: int. Square input side in pixels, a multiple of 32 (the coarsest stride).
        reg_max: int or None. Bins of the distribution focal loss box regression; None takes the family's (16 for
            YOLOv8 and YOLO11).
        padding: str. How the stride-2 3x3 convolutions pad: "same" (Keras: 0 before, 1 after on even inputs) or
            "symmetric" (PyTorch's padding=1: one pixel on every side, an explicit ZeroPadding2D + "valid"
            convolution), which imported Ultralytics weights need to compute what they computed there.
        head: str or None. Which head the graph ends in: one of the family's heads ("one2many"; YOLO26 also
            "one2one", its default), or "both" (every head, as training needs); None takes the family's default.
        task: str. One of `tfyolo.models.tasks.TASKS` ("detect", "segment"): what the head predicts besides boxes
            and classes.
    """

    num_classes: int
    family: str = "yolov8"
    scale: str = "n"
    activation: str = "silu"
    input_size: int = 320
    reg_max: Optional[int] = None
    padding: str = "same"
    head: Optional[str] = None
    task: str = DEFAULT_TASK

    def __post_init__(self):
        if not isinstance(self.num_classes, int) or isinstance(self.num_classes, bool) or self.num_classes < 1:
            raise ConfigError(f"num_classes must be a positive integer, received {self.num_classes!r}.")
        if self.family not in FAMILIES:
            raise ConfigError(f"family must be one of {sorted(FAMILIES)}, received {self.family!r}.")
        family = model_family(self.family)
        if self.scale not in family.scales:
            raise ConfigError(
                f"scale must be one of {sorted(family.scales)} for {self.family}, received {self.scale!r}."
            )
        if self.activation not in ACTIVATION_NAMES:
            raise ConfigError(f"activation must be one of {list(ACTIVATION_NAMES)}, received {self.activation!r}.")
        if not isinstance(self.input_size, int) or self.input_size < 32 or self.input_size % 32:
            raise ConfigError(
                f"input_size must be a positive multiple of 32 (the largest stride), received {self.input_size!r}. "
                f"Hint: the nearest valid sizes are {max(32, self.input_size // 32 * 32)} and "
                f"{(self.input_size // 32 + 1) * 32}."
            )
        if self.input_size > MAX_INPUT_SIZE:
            raise ConfigError(f"input_size must be at most {MAX_INPUT_SIZE}, received {self.input_size}.")
        if self.padding not in PADDINGS:
            raise ConfigError(f"padding must be one of {PADDINGS}, received {self.padding!r}.")
        if self.head is None:
            object.__setattr__(self, "head", family.heads[0])
        if self.head not in family.head_choices:
            raise ConfigError(
                f"head must be one of {list(family.head_choices)} for {self.family}, received {self.head!r}."
            )
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {sorted(TASKS)}, received {self.task!r}.")
        if self.reg_max is None:
            object.__setattr__(self, "reg_max", family.reg_max or family.default_reg_max)
        if family.reg_max is not None and self.reg_max != family.reg_max:
            raise ConfigError(f"reg_max of {self.family} is {family.reg_max}, received {self.reg_max!r}.")
        if family.reg_max is None and (not isinstance(self.reg_max, int) or self.reg_max < 2):
            raise ConfigError(f"reg_max must be an integer >= 2 for {self.family}, received {self.reg_max!r}.")

    @property
    def strides(self) -> tuple:
        return STRIDES

    @property
    def num_anchors(self) -> int:
        return sum((self.input_size // stride) ** 2 for stride in STRIDES)

    @property
    def inference_head(self) -> str:
        """The head whose outputs are `box_distribution` / `class_logits` (a model with both: the one-to-many)."""
        return "one2many" if self.head == ALL_HEADS else self.head

    @property
    def postprocess(self) -> str:
        """How its outputs become detections: "nms" or "topk" (`tfyolo.models.model_family.POSTPROCESS`)."""
        return POSTPROCESS[self.inference_head]

    @property
    def model_family(self):
        return model_family(self.family)

    @property
    def model_task(self):
        return model_task(self.task)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        # A detector's metadata stays as it was before tasks existed (the same bytes in every file it is written to);
        # a file that names no task is a detector.
        if self.task == DEFAULT_TASK:
            del values["task"]
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "model config") -> "ModelConfig":
        return cls(**strict_fields(cls, values, source))

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)
