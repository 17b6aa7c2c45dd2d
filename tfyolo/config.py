"""What every typed, frozen configuration record shares: unknown keys are errors (a misspelled option must never be
silently ignored), names that become files are plain file names, and nothing rewrites a user's value behind their
back. The records themselves live beside what they configure (`tfyolo.models.model_config.ModelConfig`, ...)."""

import dataclasses
import re
from typing import Any, Mapping

from tfyolo.errors import ConfigError

ACTIVATION_NAMES = ("silu", "relu", "relu6", "hard_swish")
STRIDES = (8, 16, 32)
# The largest square input side anything may ask for: --imgsz, a model's config, or a size read from a file (a
# checkpoint's train_args, an export's metadata, a saved model's input layer). Memory of the size-dependent parts
# grows with side^2: a file's 32000 took a conversion to 9.5 GB, so 8192 needs about (8192 / 32000)^2 of it, 0.6 GB.
MAX_INPUT_SIZE = 8192
# The most pixels an image may declare: OpenCV allocates what a header declares before it decodes a byte, and a 1 KB
# run-length BMP declaring 30000 x 30000 took 5.3 GB. 2^27 pixels (a 134-megapixel photo, 0.4 GB as RGB) is more
# than any camera a dataset comes from; OpenCV's own default is 2^30.
MAX_IMAGE_PIXELS = 1 << 27


def input_size_problem(value):
    """None if `value` is a square input side a model can take (an int, a multiple of 32, the coarsest stride, from
    32 to MAX_INPUT_SIZE); else what was expected, for a one-line error naming where `value` came from."""
    if isinstance(value, int) and not isinstance(value, bool) and 32 <= value <= MAX_INPUT_SIZE and value % 32 == 0:
        return None
    return f"a multiple of 32 from 32 to {MAX_INPUT_SIZE} (the coarsest stride is 32), received {str(value)[:40]!r}"


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
