"""What a converted artifact is called and what it says about itself.

An artifact travels: a user hands it on, a client downloads it from the service. It names what it was made from
without saying where that was on the machine that made it: the float model by its file name and sha256, the
calibration images by their folder's name (a data.yaml by its folder's name and its own). The job's report, which
stays where it was made (the service redacts its copy), keeps the full paths. The one path an artifact may carry is
`data`, the dataset its model's own metadata names, which `evaluate` and `bundle` fall back to on that machine; the
service drops it from every uploaded model, and an imported model names none.
"""

import functools
from pathlib import Path

import tfyolo
from tfyolo.compat import tf
from tfyolo.io_utils import sha256_file
from tfyolo.models.detector_metadata import postprocess_of


def artifact_stem(model_path, name=None):
    """`name`, else the model's stem, else (for best/last.keras) its folder's name."""
    if name:
        return name
    path = Path(model_path)
    return path.parent.name if path.stem in ("best", "last") else path.stem


def artifact_metadata(model_metadata, recipe, calibration_summary, input_size, num_classes, source_model, qat=False):
    """The essentials embedded in every .tflite, with Ultralytics' keys (stride, imgsz, names, task, batch).
    qat: the source is a quantization-aware-trained model (its ranges were learned, not calibrated)."""
    names = (model_metadata or {}).get("names") or [f"class{i}" for i in range(num_classes)]
    family = (model_metadata or {}).get("family") or "yolov8"
    return {
        "description": f"tfyolo {family} detector, recipe {recipe.name}: {recipe.description}",
        "author": "tfyolo",
        "version": tfyolo.__version__,
        "task": "detect",
        "stride": 32,
        "strides": [8, 16, 32],
        "batch": 1,
        "imgsz": [input_size, input_size],
        "names": {str(index): name for index, name in enumerate(names)},
        "layout": "tfyolo",
        "outputs": {
            "box_distribution": "DFL logits (1, anchors, 4*reg_max); reg_max 1: left/top/right/bottom distances",
            "class_logits": "class logits before sigmoid (1, anchors, classes)",
        },
        "reg_max": (model_metadata or {}).get("reg_max", 16),
        "family": family,
        # How the outputs become detections: "nms" (one-to-many head) or "topk" (one-to-one head: the k best
        # class scores, no NMS); read back by every runner, the bundle and reference_infer.py.
        "head": (model_metadata or {}).get("head", "one2many"),
        "postprocess": postprocess_of(model_metadata),
        "preprocess": {"letterbox": True, "pad_value": 114, "color": "RGB", "scale": "1/255"},
        "recipe": recipe.to_dict(),
        "calibration": calibration_without_location(calibration_summary),
        "source_model": Path(source_model).name,
        "source_model_sha256": model_sha256(source_model),
        "qat": qat,
        "data": (model_metadata or {}).get("data"),
        "versions": {"tfyolo": tfyolo.__version__, "tensorflow": tf.__version__},
    }


def model_sha256(path):
    """The sha256 of the model file at `path` (None for a folder, or no file), read once while it is unchanged: every
    recipe of a job embeds it."""
    path = Path(path)
    if not path.is_file():
        return None
    status = path.stat()
    return _sha256_of(str(path.resolve()), status.st_size, status.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256_of(path, size, modified):
    return sha256_file(path)


def calibration_without_location(summary):
    """A calibration summary (`load_calibration_images`) as an artifact carries it: its `source` is the source's
    location-free name (`source_name`), its full description left to the job's report."""
    if not summary or "source_name" not in summary:
        return summary
    named = {key: value for key, value in summary.items() if key != "source_name"}
    return {**named, "source": summary["source_name"]}


def finalize_artifact(content, recipe, metadata, allow_float=False):
    """What every converted model goes through before it is written (by `convert` and by `--auto` alike): the
    post-conversion inspection that holds an integer recipe to its promise, then the embedded metadata.

    Returns (bytes with the metadata appended, inspection dict)."""
    from tfyolo.metadata import embed_metadata
    from tfyolo.quantization.isolated import check_artifact

    inspection = check_artifact(content, recipe, allow_float=allow_float)
    return embed_metadata(content, metadata), inspection
