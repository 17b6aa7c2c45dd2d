"""Each conversion in a child process.

`TFLiteConverter.convert()` leaks memory in TF 2.20/2.21 (tensorflow#122598): a sweep over six recipes in
one process keeps growing. A spawned child per conversion returns its memory to the system when it exits.
"""

import multiprocessing
import tempfile
import traceback
from pathlib import Path

import numpy as np

from tfyolo.errors import TfyoloError
from tfyolo.io_utils import naming_os_errors
from tfyolo.processes import children_ignore_sigint


class ConversionError(TfyoloError):
    """A recipe failed to convert or failed its post-conversion check."""


def _convert_in_child(model_path, recipe_values, calibration_path, output_path, error_path):
    import warnings

    from tfyolo.processes import die_with_multiprocessing_parent

    die_with_multiprocessing_parent()

    # TFLiteConverter warns that int8 inputs have no statistics: they come from the representative dataset.
    warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
    try:
        from tfyolo.qat.qat_io import load_any_detector
        from tfyolo.quantization.converter import convert
        from tfyolo.quantization.recipe import Recipe

        recipe = Recipe.from_dict(recipe_values)
        model = load_any_detector(model_path)
        images = np.load(calibration_path) if calibration_path else None
        config = None
        if recipe.input_size:
            from tfyolo.models.detector_metadata import detector_config

            config = detector_config(model_path)
        Path(output_path).write_bytes(convert(model, recipe, images, model_config=config))
    except BaseException as error:  # everything must reach the parent as text
        message = str(error).strip().splitlines()
        Path(error_path).write_text(
            f"{type(error).__name__}: {message[0] if message else ''}\n\n{traceback.format_exc()}"
        )


def convert_isolated(model_path, recipe, calibration_images=None):
    """Converts the model file at `model_path` with `recipe` in a spawned process; returns the .tflite bytes."""
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="tfyolo-convert-") as folder:
        folder = Path(folder)
        calibration_path = None
        if calibration_images is not None:
            calibration_path = folder / "calibration.npy"
            with naming_os_errors(calibration_path):
                np.save(calibration_path, calibration_images)
        output_path, error_path = folder / "model.tflite", folder / "error.txt"
        process = context.Process(
            target=_convert_in_child,
            args=(
                str(model_path),
                recipe.to_dict(),
                calibration_path and str(calibration_path),
                str(output_path),
                str(error_path),
            ),
        )
        with children_ignore_sigint():
            process.start()
        try:
            process.join()
        finally:
            # Interrupted (Ctrl-C, a job stopped): the child ignores SIGINT, so it is stopped here, never left behind.
            if process.is_alive():
                process.terminate()
                process.join()
        if error_path.is_file():
            raise ConversionError(f"recipe {recipe.name!r}: {error_path.read_text().splitlines()[0]}")
        if process.exitcode != 0 or not output_path.is_file():
            raise ConversionError(
                f"recipe {recipe.name!r}: the conversion process died (exit code {process.exitcode})."
            )
        return output_path.read_bytes()


def check_artifact(model_content, recipe, allow_float=False):
    """Inspects the converted model; raises if a full-integer recipe left float compute in the graph.

    allow_float: the model itself keeps layers in float on purpose (staged QAT)."""
    from tfyolo.tflite_runtime import inspect_tflite

    inspection = inspect_tflite(model_content)
    inspection["full_integer"] = not inspection["float_compute_ops"]
    io_types = inspection["io_types"]
    if any(dtype != recipe.io_type for dtype in io_types.values()):
        raise ConversionError(
            f"recipe {recipe.name!r} promises {recipe.io_type} I/O but the model's input and outputs are "
            f"{io_types}; the artifact's name and metadata would not say what it is."
        )
    if recipe.promises_full_integer and not allow_float and inspection["float_compute_ops"]:
        found = sorted(set(inspection["float_compute_ops"]))
        raise ConversionError(
            f"recipe {recipe.name!r} promises integer-only compute but the model keeps "
            f"{len(inspection['float_compute_ops'])} float op(s): {found}."
        )
    return inspection
