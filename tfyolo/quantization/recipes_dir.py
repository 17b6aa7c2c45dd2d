"""Where built-in recipes live (`converters/*.yaml` of the project) and how a --recipe value resolves.

From a source tree (an editable install) they are the project's own folders. A wheel installs copies under
`<prefix>/share/tfyolo/` (setup.cfg's data_files), found through the install scheme's data path.
"""

import os
import sysconfig
from pathlib import Path

from tfyolo.errors import ConfigError
from tfyolo.quantization.recipe import load_recipe

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The built-in recipes a conversion runs when it names none, in report order. The others run only when named: the
# TFLiteConverter int8 (int8_tflite*, a comparison) and those that fine-tune the model first (cluster_int8,
# prune_int8: minutes of training).
DEFAULT_ORDER = ("fp32", "fp16", "dynamic", "int8", "int8_int8io", "int16x8")


def _shipped(folder):
    """`folder` of the source tree, else of the installed data; the source path (missing) when neither is."""
    data_paths = [sysconfig.get_path("data"), sysconfig.get_path("data", f"{os.name}_user")]
    candidates = [PROJECT_ROOT / folder] + [Path(path) / "share" / "tfyolo" / folder for path in data_paths]
    return next((path for path in candidates if path.is_dir()), candidates[0])


RECIPES_DIR = Path(os.environ.get("TFYOLO_RECIPES") or _shipped("converters"))
DEFAULT_CALIBRATION = _shipped("calibration_data")


def builtin_recipe_names():
    names = sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))
    if not names:
        raise ConfigError(
            f"no built-in recipes in {RECIPES_DIR} (tfyolo installed without its converters/ folder?); pass "
            "--recipe PATH.yaml or set TFYOLO_RECIPES to a folder of recipe .yaml files."
        )
    return [name for name in DEFAULT_ORDER if name in names] + [n for n in names if n not in DEFAULT_ORDER]


def default_recipe_names():
    """The built-in recipes a conversion runs when it names none (DEFAULT_ORDER)."""
    return [name for name in builtin_recipe_names() if name in DEFAULT_ORDER]


def resolve_recipe(value):
    """A recipe YAML path, or the name of a built-in recipe."""
    path = Path(value)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return load_recipe(path)
    candidate = RECIPES_DIR / f"{value}.yaml"
    if candidate.is_file():
        return load_recipe(candidate)
    raise ConfigError(f"unknown recipe {value!r}; built-in recipes: {builtin_recipe_names()} (or a recipe .yaml path).")
