"""Model metadata: beside a .keras file as metadata.json, inside a .tflite as an appended zip.

The .tflite form is the one Ultralytics-style readers understand: a zip archive holding `metadata.json`
appended after the flatbuffer (interpreters ignore trailing bytes; zip readers find the archive from the end).
"""

import io
import json
import zipfile
from pathlib import Path

from tfyolo.errors import DataError

EMBEDDED_NAME = "metadata.json"


def embed_metadata(tflite_bytes, metadata):
    buffer = io.BytesIO()
    buffer.write(tflite_bytes)
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(EMBEDDED_NAME, json.dumps(metadata, indent=2))
    return buffer.getvalue()


def read_embedded_metadata(source):
    """The metadata embedded in a .tflite (path or bytes), or None."""
    data = Path(source).read_bytes() if not isinstance(source, (bytes, bytearray)) else bytes(source)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return json.loads(archive.read(EMBEDDED_NAME))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError):
        return None


def find_model_metadata(model_path):
    """What a model says about itself: embedded (.tflite) or metadata.json in its folder; None if nothing."""
    path = Path(model_path)
    if path.suffix == ".tflite" and path.is_file():
        embedded = read_embedded_metadata(path)
        if embedded is not None:
            return embedded
    folder = path if path.is_dir() else path.parent
    beside = folder / "metadata.json"
    if beside.is_file():
        return json.loads(beside.read_text())
    return None


def resolve_data(data_yaml, model_path, required=True):
    """--data, else the dataset the model's metadata names; a clear error when there is none and `required`,
    else None."""
    if data_yaml:
        return data_yaml
    metadata = find_model_metadata(model_path)
    named = (metadata or {}).get("data")
    if named and Path(named).is_file():
        return named
    if not required:
        return None
    if named:
        raise DataError(f"{model_path}: its metadata names data {named}, which is not here; pass --data.")
    raise DataError(f"{model_path}: no --data given and the model carries no dataset metadata; pass --data DATA.yaml.")
