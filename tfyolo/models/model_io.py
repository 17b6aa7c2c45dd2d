"""Saving and loading detectors, atomically, with their metadata inside the file and clear errors."""

from pathlib import Path

from tfyolo.compat import keras
from tfyolo.errors import ModelError
from tfyolo.io_utils import atomic_path
from tfyolo.metadata import embed_in_model_file
from tfyolo.models.detect_head import BOX_OUTPUT, CLASS_OUTPUT
from tfyolo.models.hard_swish import HardSwish
from tfyolo.models.model_file_check import check_model_config

CUSTOM_OBJECTS = {"HardSwish": HardSwish}


def save_model_atomic(model, path, metadata=None):
    """Writes `model` to `path` through a temporary file in the same folder, with `metadata` (the dict of
    `tfyolo.models.detector_metadata.detector_metadata`) inside it.

    `.keras` (Keras v3 format) for float models; `.h5` for QAT models, because the v3 format does not
    round-trip tfmot's QuantizeLayer in tf_keras 2.21 ("expected 5 variables, but received 3"), while HDF5,
    the format tfmot itself tests, reloads bit-exact.
    """
    with atomic_path(path) as temporary:
        model.save(temporary, overwrite=True, save_format="h5" if Path(path).suffix == ".h5" else None)
        if metadata is not None:
            embed_in_model_file(temporary, metadata)


def check_detector(model, source):
    outputs = model.output_names if hasattr(model, "output_names") else []
    if not isinstance(model.output, dict) or {BOX_OUTPUT, CLASS_OUTPUT} - set(model.output):
        raise ModelError(
            f"{source}: not a tfyolo detector; expected outputs {BOX_OUTPUT!r} and {CLASS_OUTPUT!r}, found {outputs}."
        )
    return model


def load_keras_model(path, scope=None):
    """Loads a .keras / .h5 detector; `scope` is an optional context manager (e.g. tfmot's quantize_scope)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found.")
    # Read as plain JSON and refused unless it holds only known, code-free layers (Keras runs a Lambda's code while
    # it loads, and tf_keras' safe mode does not cover .h5 files), and its weights only datasets stored inside the
    # file (HDF5 reads external storage, virtual layouts and links from other files of this machine).
    check_model_config(path)
    try:
        if scope is not None:
            with scope:
                model = keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
        else:
            model = keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
    except (OSError, ValueError, TypeError, KeyError) as error:
        message = str(error).strip().splitlines()
        raise ModelError(f"{path}: cannot load as a Keras model ({message[0] if message else type(error).__name__}).")
    return check_detector(model, path)
