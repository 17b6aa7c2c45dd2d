"""Where calibration images come from when a conversion names none."""

from pathlib import Path

from tfyolo.errors import DataError


def default_calibration_source(model_path, model_metadata, data=None):
    """(source, why) when no calibration source was given.

    A model that names its dataset is calibrated on that dataset's train split; one that names none (an imported
    model) on the train split of the data it is evaluated on (`data`), as a user calibrates on their own
    training images; `calibration_data/` (synthetic shapes) only serves a model with neither, and the caller says
    so: silently calibrating a real model on synthetic shapes would report a quantized model worse than it needs
    to be.
    """
    from tfyolo.quantization.recipes_dir import DEFAULT_CALIBRATION

    named = (model_metadata or {}).get("data")
    if named and Path(named).is_file():
        return Path(named), f"the train split of {named}, the dataset the model's metadata names"
    if named:
        raise DataError(
            f"{model_path}: its metadata names the dataset {named}, which is not here, and no --calibration was "
            "given. Pass --calibration with that dataset's data.yaml (its train split is used) or a folder of its "
            "training images; the built-in calibration_data/ holds synthetic shapes, not that data."
        )
    if data and Path(data).is_file():
        return Path(data), f"the train split of {data}, the data it is evaluated on (the model names no dataset)"
    if not DEFAULT_CALIBRATION.is_dir():
        raise DataError(
            f"{model_path}: names no dataset and the built-in calibration_data/ is not installed; pass "
            "--calibration with a data.yaml or an image folder of the model's training data."
        )
    return DEFAULT_CALIBRATION, (
        f"the built-in synthetic set {DEFAULT_CALIBRATION}, because the model names no dataset and no evaluation "
        "data was given; for a real model pass --calibration with its own training images"
    )
