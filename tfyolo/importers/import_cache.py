"""An Ultralytics `.pt` or `.onnx` handed to any command (convert, eval, qat, the service) is imported on the fly
through `import_weights`: the same restricted unpickler, complete-import check, activation check and metadata as
`tfyolo import`. The imported `.keras` is cached under the caller's folder, named by the source's content and the
import options, so a second run reuses it instead of importing again."""

import os
from pathlib import Path

from tfyolo.errors import ModelError
from tfyolo.io_utils import sha256_file
from tfyolo.metadata import find_model_metadata

IMPORTABLE = (".pt", ".onnx")
# The folder an import is cached in, below a command's output folder.
IMPORTED_FOLDER = "imported"


def is_importable(path):
    return Path(path).suffix.lower() in IMPORTABLE


def default_cache_dir():
    """Where commands without an output folder (tfyolo-eval) cache their imports: the user's cache folder."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "tfyolo" / IMPORTED_FOLDER


def imported_model(path, cache_dir, imgsz=None, head=None, progress=None):
    """The tfyolo `.keras` of Ultralytics file `path`, imported into `cache_dir` or found there from an earlier
    import of the same bytes with the same `imgsz` and `head`; returns (its path, whether it was imported now).

    progress: optional callable(message) told what happens."""
    from tfyolo.importers.ultralytics_import import import_weights
    from tfyolo.models.model_io import save_model_atomic

    path = Path(path)
    if not is_importable(path):
        raise ModelError(f"{path}: expected an Ultralytics .pt checkpoint or .onnx export, received {path.suffix!r}.")
    digest = sha256_file(path)
    options = f"{imgsz or 'own'}px_{head or 'default'}"
    target = Path(cache_dir) / f"{path.stem}_{digest[:12]}_{options}.keras"
    cached = find_model_metadata(target) if target.is_file() else None
    if ((cached or {}).get("source") or {}).get("sha256") == digest:
        if progress:
            progress(f"import: {path.name} was imported before into {target}; reusing it")
        return target, False
    if progress:
        progress(f"import: {path.name} -> {target} (no PyTorch: read, rebuilt in Keras, every tensor checked)")
    model, metadata = import_weights(path, imgsz, head)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_model_atomic(model, target, metadata)
    return target, True


def describe_import(metadata):
    """One line saying what an import holds, as `tfyolo import` prints it."""
    left_out = (metadata.get("source") or {}).get("left_out")
    used = f"left out: {left_out['why']}" if left_out else "every tensor used"
    # A detector's metadata names no task (`ModelConfig.to_dict`), and its line stays as it was.
    task = (metadata.get("model") or {}).get("task")
    return (
        f"{metadata['family']} {metadata['scale']}{f' {task}' if task else ''}, {len(metadata['names'])} classes, "
        f"{metadata['imgsz']} px, "
        f"{metadata['head']} head ({metadata['postprocess']}), {used}"
    )
