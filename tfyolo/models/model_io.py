"""Saving and loading detectors (.keras + metadata.json), atomically, with clear errors."""

import json
import os
import tempfile
from pathlib import Path

from tfyolo.compat import keras
from tfyolo.config import ModelConfig
from tfyolo.errors import ModelError
from tfyolo.io_utils import _umask_mode
from tfyolo.models.hard_swish import HardSwish
from tfyolo.models.yolo_detector import BOX_OUTPUT, CLASS_OUTPUT

CUSTOM_OBJECTS = {"HardSwish": HardSwish}
METADATA_NAME = "metadata.json"


def save_model_atomic(model, path):
    """Writes `model` to `path` (.keras) through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".keras")
    os.close(handle)
    try:
        model.save(temporary, overwrite=True)
        os.chmod(temporary, _umask_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def check_detector(model, source):
    outputs = model.output_names if hasattr(model, "output_names") else []
    if not isinstance(model.output, dict) or {BOX_OUTPUT, CLASS_OUTPUT} - set(model.output):
        raise ModelError(
            f"{source}: not a tfyolo detector; expected outputs {BOX_OUTPUT!r} and {CLASS_OUTPUT!r}, found {outputs}."
        )
    return model


def load_keras_model(path, scope=None):
    """Loads a .keras detector; `scope` is an optional context manager (e.g. tfmot's quantize_scope)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found.")
    try:
        if scope is not None:
            with scope:
                model = keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
        else:
            model = keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
    except (OSError, ValueError) as error:
        raise ModelError(f"{path}: cannot load as a Keras model ({str(error).splitlines()[0]}).")
    return check_detector(model, path)


def read_metadata(model_path):
    """The metadata.json saved beside a model, or None."""
    candidate = Path(model_path).with_name(METADATA_NAME)
    if candidate.is_file():
        return json.loads(candidate.read_text())
    return None


def model_config_from_metadata(metadata):
    return ModelConfig.from_dict(metadata["model"], source="metadata.json 'model'")


def load_any_detector(path):
    """Loads a float or a quantization-aware-trained (.keras) detector; QAT models need tfmot's scope."""
    try:
        return load_keras_model(path)
    except ModelError:
        from tfyolo.qat.quantize_configs import quantize_scope

        return load_keras_model(path, scope=quantize_scope())
