"""Saving and loading detectors (.keras + metadata.json), atomically, with clear errors."""

import json
import zipfile
from pathlib import Path

from tfyolo.compat import keras
from tfyolo.errors import ModelError
from tfyolo.io_utils import atomic_path
from tfyolo.models.hard_swish import HardSwish
from tfyolo.models.model_file_check import check_model_config
from tfyolo.models.yolo_detector import BOX_OUTPUT, CLASS_OUTPUT

CUSTOM_OBJECTS = {"HardSwish": HardSwish}
METADATA_NAME = "metadata.json"


def save_model_atomic(model, path):
    """Writes `model` to `path` through a temporary file in the same folder.

    `.keras` (Keras v3 format) for float models; `.h5` for QAT models, because the v3 format does not
    round-trip tfmot's QuantizeLayer in tf_keras 2.21 ("expected 5 variables, but received 3"), while HDF5,
    the format tfmot itself tests, reloads bit-exact.
    """
    with atomic_path(path) as temporary:
        model.save(temporary, overwrite=True, save_format="h5" if Path(path).suffix == ".h5" else None)


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
    # Read as plain JSON and refused unless it holds only known, code-free layers: Keras runs a Lambda's code
    # while it loads, and tf_keras' safe mode does not cover .h5 files.
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


def read_metadata(model_path):
    """The metadata.json saved beside a model, or None."""
    candidate = Path(model_path).with_name(METADATA_NAME)
    if candidate.is_file():
        return json.loads(candidate.read_text())
    return None


def is_qat_file(path):
    """True if the model file holds tfmot quantize wrappers (it then loads only under quantize_scope)."""
    path = Path(path)
    try:
        if path.suffix == ".h5":
            import h5py

            with h5py.File(path, "r") as stream:
                return "QuantizeWrapper" in str(stream.attrs.get("model_config", ""))
        with zipfile.ZipFile(path) as archive:
            return b"QuantizeWrapper" in archive.read("config.json")
    except (zipfile.BadZipFile, KeyError, OSError):
        return False


def load_any_detector(path):
    """Loads a float or a quantization-aware-trained (.keras) detector; QAT models need tfmot's scope."""
    if not is_qat_file(path):
        return load_keras_model(path)
    metadata = read_metadata(path) or {}
    if metadata.get("qat_preserve") == "cluster":
        return _load_cluster_preserving(path, metadata)
    from tfyolo.qat.quantize_configs import quantize_scope

    return load_keras_model(path, scope=quantize_scope())


def _load_cluster_preserving(path, metadata):
    """A cluster-preserving QAT model, rebuilt from its float model and given its saved weights.

    tfmot swaps the weight quantizer of a layer's quantize config in place, and the config does not serialize it:
    loaded from its own file, each layer would get the default quantizer and reject the saved cluster weights.
    """
    from tfyolo.qat.qat_model import build_qat_model

    source = Path(metadata.get("qat_from") or "")
    if not source.is_file():
        raise ModelError(
            f"{path}: a cluster-preserving QAT model loads through the float model it was trained from, "
            f"{str(source)!r}, which was not found."
        )
    # Built as in training, centroids held: the saved weights are in that order (trainable first, then the rest).
    model = build_qat_model(load_keras_model(source), staged=bool(metadata.get("qat_staged")), preserve="cluster")
    try:
        model.load_weights(path)
    except (OSError, ValueError) as error:
        raise ModelError(f"{path}: its weights do not fit the model rebuilt from {source} ({error}).")
    return check_detector(model, path)
