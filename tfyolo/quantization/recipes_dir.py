"""Where built-in recipes live (`converters/*.yaml` of the project) and how a --recipe value resolves."""

import os
from pathlib import Path

from tfyolo.errors import ConfigError
from tfyolo.quantization.recipe import load_recipe

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RECIPES_DIR = Path(os.environ.get("TFYOLO_RECIPES", PROJECT_ROOT / "converters"))
DEFAULT_CALIBRATION = PROJECT_ROOT / "calibration_data"
DEFAULT_ORDER = ("fp32", "fp16", "dynamic", "int8", "int8_int8io", "int16x8")


def builtin_recipe_names():
    names = sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))
    return [name for name in DEFAULT_ORDER if name in names] + [n for n in names if n not in DEFAULT_ORDER]


def resolve_recipe(value):
    """A recipe YAML path, or the name of a built-in recipe."""
    path = Path(value)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return load_recipe(path)
    candidate = RECIPES_DIR / f"{value}.yaml"
    if candidate.is_file():
        return load_recipe(candidate)
    raise ConfigError(f"unknown recipe {value!r}; built-in recipes: {builtin_recipe_names()} (or a recipe .yaml path).")
