"""Loading any saved detector, float or quantization-aware: QAT models need tfmot's scope, and a cluster-preserving
one is rebuilt from the float model it was trained from."""

import zipfile
from pathlib import Path

from tfyolo.errors import ModelError
from tfyolo.metadata import find_model_metadata
from tfyolo.models.model_file_check import read_model_config
from tfyolo.models.model_io import check_detector, load_keras_model


def is_qat_file(path):
    """True if the model file holds tfmot quantize wrappers (it then loads only under quantize_scope)."""
    try:
        return "QuantizeWrapper" in str(read_model_config(path))
    except (ModelError, zipfile.BadZipFile):
        return False


def load_any_detector(path):
    """Loads a float or a quantization-aware-trained detector."""
    from tfyolo.qat.quantize_configs import quantize_scope

    if not is_qat_file(path):
        return load_keras_model(path)
    metadata = find_model_metadata(path) or {}
    if metadata.get("qat_preserve") == "cluster":
        return _load_cluster_preserving(path, metadata)
    return load_keras_model(path, scope=quantize_scope())


def _load_cluster_preserving(path, metadata):
    """A cluster-preserving QAT model, rebuilt from its float model and given its saved weights.

    tfmot swaps the weight quantizer of a layer's quantize config in place, and the config does not serialize it:
    loaded from its own file, each layer would get the default quantizer and reject the saved cluster weights.
    """
    from tfyolo.models.detector_metadata import family_of
    from tfyolo.qat.qat_model import build_qat_model

    source = Path(metadata.get("qat_from") or "")
    if not source.is_file():
        raise ModelError(
            f"{path}: a cluster-preserving QAT model loads through the float model it was trained from, "
            f"{str(source)!r}, which was not found."
        )
    # Built as in training, centroids held: the saved weights are in that order (trainable first, then the rest).
    model = build_qat_model(
        load_keras_model(source),
        staged=bool(metadata.get("qat_staged")),
        preserve="cluster",
        family=family_of(metadata),
    )
    try:
        model.load_weights(path)
    except (OSError, ValueError) as error:
        raise ModelError(f"{path}: its weights do not fit the model rebuilt from {source} ({error}).")
    return check_detector(model, path)
