"""The detector a training run starts from (`train --weights`): a tfyolo model file, or an Ultralytics `.pt` /
`.onnx` imported on the fly."""

from pathlib import Path

from tfyolo.errors import ModelError
from tfyolo.metadata import find_model_metadata


def load_source_detector(path, input_size=None):
    """(Keras detector, its metadata) from `path`."""
    path = Path(path)
    if path.suffix in (".pt", ".onnx"):
        from tfyolo.importers.ultralytics_import import import_weights

        return import_weights(path, input_size)
    if path.suffix == ".keras":
        from tfyolo.models.model_io import load_keras_model

        return load_keras_model(path), find_model_metadata(path)
    raise ModelError(f"{path}: --weights takes a .keras, an Ultralytics .pt or .onnx, received {path.suffix!r}.")
