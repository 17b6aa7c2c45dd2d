"""A runner for whatever model file a user points at: a .tflite, a SavedModel folder, a float or QAT Keras model,
optionally rebuilt at another input size."""

from pathlib import Path

from tfyolo.errors import ModelError
from tfyolo.evaluation.runners import KerasRunner, SavedModelRunner, TFLiteRunner
from tfyolo.importers.import_cache import default_cache_dir, imported_model, is_importable
from tfyolo.metadata import find_model_metadata
from tfyolo.models.detector_metadata import detector_config, postprocess_of
from tfyolo.models.resize import resize_detector
from tfyolo.qat.qat_io import load_any_detector


def open_runner(path, num_threads=2, layout="auto", input_size=None, progress=None):
    """The runner of `path`, chosen by what it is; `input_size` rebuilds a Keras model at that size (its metadata
    says what to rebuild), or imports an Ultralytics .pt / .onnx at that size (cached in the user's cache folder);
    a converted model's size is fixed. progress: optional callable(message)."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: model not found.")
    if is_importable(path):
        imported, _ = imported_model(path, default_cache_dir(), input_size, progress=progress)
        return keras_runner(imported, description=f"{path} (imported: {imported})")
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ModelError(f"{path}: a folder, but not a SavedModel (no saved_model.pb).")
        runner = SavedModelRunner(path)
    elif path.suffix == ".tflite":
        runner = TFLiteRunner(path, num_threads=num_threads, layout=layout)
    elif path.suffix in (".keras", ".h5"):
        runner = keras_runner(path)
    else:
        raise ModelError(
            f"{path}: unknown model type {path.suffix!r}; expected .keras, .h5, .tflite, an Ultralytics .pt / .onnx "
            "or a SavedModel folder."
        )
    if input_size is None or input_size == runner.input_size:
        return runner
    if type(runner) is KerasRunner:
        resized = resize_detector(runner.model, detector_config(path), input_size)
        return keras_runner(path, resized, description=f"{path} @ {input_size}px")
    raise ModelError(
        f"{path}: this model takes {runner.input_size}x{runner.input_size} inputs; --imgsz {input_size} does not fit "
        "(a converted model's input size is fixed; convert again at that size)."
    )


def keras_runner(path, model=None, description=None, metadata=None):
    """The KerasRunner of the detector file `path` (or of `model`, already loaded from it), whose outputs become
    detections as its metadata says (NMS, or top-k for a one-to-one head); `metadata`: the file's, where the caller
    has read it already."""
    return KerasRunner(
        model if model is not None else load_any_detector(path),
        description=description or str(path),
        postprocess=postprocess_of(metadata if metadata is not None else find_model_metadata(path)),
    )
