"""The one metadata schema of a saved detector: written by `detector_metadata` (training, import, compression) and read
back by `detector_config` / `detector_family`. Nothing reads a model's architecture off its layer names.

A model saved before families existed has no family in its metadata: it is a YOLOv8 (the only family then), and
its config is under "model" (trained) or "model_config" (imported).
"""

from tfyolo.errors import ModelError
from tfyolo.metadata import find_model_metadata
from tfyolo.models.families import LEGACY_FAMILY, model_family
from tfyolo.models.model_config import ModelConfig

FORMAT = "tfyolo-detector/2"


def detector_metadata(config, names, source=None, data=None, **details):
    """The metadata a detector is saved with.

    Args:
        config: ModelConfig. The architecture.
        names: list of str. Class names, one per class.
        source: dict or None. Where the weights come from (an import's file, format and sha256); None: trained
            by tfyolo.
        data: str or None. The data.yaml it was trained on (calibration and evaluation default to it).
        details: anything else the writer records (training arguments, validation metrics, QAT provenance).
    """
    names = [str(name) for name in names]
    if len(names) != config.num_classes:
        raise ModelError(f"{len(names)} class names for a model of {config.num_classes} classes: {names[:5]}.")
    return {
        "format": FORMAT,
        "family": config.family,
        "scale": config.scale,
        "num_classes": config.num_classes,
        "names": names,
        "imgsz": config.input_size,
        "reg_max": config.reg_max,
        "strides": list(config.strides),
        "padding": config.padding,
        "activation": config.activation,
        "head": config.head,
        "postprocess": config.postprocess,
        "model": config.to_dict(),
        "source": source or {"kind": "trained by tfyolo"},
        "data": data,
        **details,
    }


def config_from_metadata(metadata, where):
    """The ModelConfig a metadata dict describes (legacy layouts included); raises naming `where` if it has none."""
    values = (metadata or {}).get("model") or (metadata or {}).get("model_config")
    if not isinstance(values, dict):
        raise ModelError(
            f"{where}: no model metadata (the architecture it was built with); re-save it with this tfyolo, or "
            "import it again from its Ultralytics file."
        )
    return ModelConfig.from_dict({"family": LEGACY_FAMILY, **values}, source=f"{where} metadata")


def detector_config(model_path):
    """The ModelConfig of the saved detector at `model_path`, from its metadata."""
    return config_from_metadata(find_model_metadata(model_path), model_path)


def family_of(metadata):
    """The ModelFamily a metadata dict names (YOLOv8 for a model saved before families, or with no metadata)."""
    values = (metadata or {}).get("model") or (metadata or {}).get("model_config") or {}
    return model_family((metadata or {}).get("family") or values.get("family") or LEGACY_FAMILY)


def postprocess_of(metadata):
    """How a saved detector's outputs become detections ("nms" or "topk"), from its metadata; "nms" for a model
    saved before heads were recorded (every one of them ended in a one-to-many head)."""
    values = (metadata or {}).get("model") or (metadata or {}).get("model_config")
    if not isinstance(values, dict):
        return "nms"
    return config_from_metadata(metadata, "model").postprocess
