"""Typed, frozen configuration records, validated once when built.

Unknown keys are errors (a misspelled option must never be silently ignored), and nothing here rewrites a
user's value behind their back.
"""

import dataclasses
import re
from typing import Any, Mapping

from tfyolo.errors import ConfigError

SCALES = {
    # name: (depth multiple, width multiple, max channels), as YOLOv8's yolov8.yaml `scales` table.
    "n": (0.33, 0.25, 1024),
    "s": (0.33, 0.50, 1024),
    "m": (0.67, 0.75, 768),
}
ACTIVATION_NAMES = ("silu", "relu", "relu6", "hard_swish")
STRIDES = (8, 16, 32)


def strict_fields(cls, values: Mapping[str, Any], source: str) -> dict:
    """Returns `values` if every key is a field of dataclass `cls`; raises naming the unknown keys otherwise."""
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {unknown}; expected a subset of {sorted(known)}. "
            "Check the spelling: unknown keys are never ignored."
        )
    return dict(values)


# What an artifact name may be: a plain file name (it becomes `<name>.tflite`, `<stem>_<name>.tflite`), never a
# path: "../x" or "/x" would write outside the output folder.
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")


def check_plain_name(value, field):
    """Returns `value` if it is a plain file name (letters, digits, `_ . + -`, not starting with a dot); raises a
    ConfigError naming `field` otherwise."""
    if not isinstance(value, str) or not PLAIN_NAME.fullmatch(value) or ".." in value:
        raise ConfigError(
            f"{field}: expected a plain file name (letters, digits and _ . + -, at most 100, no folders), received "
            f"{str(value)[:120]!r}."
        )
    return value


PADDINGS = ("same", "symmetric")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What defines a detector's architecture.

    Args:
        num_classes: int. Number of object classes.
        scale: str. YOLOv8 scale, one of `SCALES` ("n", "s", "m").
        activation: str. One of `ACTIVATION_NAMES`; "silu" is YOLOv8's own.
        input_size: int. Square input side in pixels, a multiple of 32 (the coarsest stride).
        reg_max: int. Bins of the distribution focal loss box regression (YOLOv8: 16).
        padding: str. How the stride-2 3x3 convolutions pad: "same" (Keras: 0 before, 1 after on even inputs) or
            "symmetric" (PyTorch's padding=1: one pixel on every side, an explicit ZeroPadding2D + "valid"
            convolution), which imported Ultralytics weights need to compute what they computed there.
    """

    num_classes: int
    scale: str = "n"
    activation: str = "silu"
    input_size: int = 320
    reg_max: int = 16
    padding: str = "same"

    def __post_init__(self):
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ConfigError(f"num_classes must be a positive integer, received {self.num_classes!r}.")
        if self.scale not in SCALES:
            raise ConfigError(f"scale must be one of {sorted(SCALES)}, received {self.scale!r}.")
        if self.activation not in ACTIVATION_NAMES:
            raise ConfigError(f"activation must be one of {list(ACTIVATION_NAMES)}, received {self.activation!r}.")
        if not isinstance(self.input_size, int) or self.input_size < 32 or self.input_size % 32:
            raise ConfigError(
                f"input_size must be a positive multiple of 32 (the largest stride), received {self.input_size!r}. "
                f"Hint: the nearest valid sizes are {max(32, self.input_size // 32 * 32)} and "
                f"{(self.input_size // 32 + 1) * 32}."
            )
        if self.padding not in PADDINGS:
            raise ConfigError(f"padding must be one of {PADDINGS}, received {self.padding!r}.")
        if not isinstance(self.reg_max, int) or self.reg_max < 2:
            raise ConfigError(f"reg_max must be an integer >= 2, received {self.reg_max!r}.")

    @property
    def strides(self) -> tuple:
        return STRIDES

    @property
    def num_anchors(self) -> int:
        return sum((self.input_size // stride) ** 2 for stride in STRIDES)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "model config") -> "ModelConfig":
        return cls(**strict_fields(cls, values, source))

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)
