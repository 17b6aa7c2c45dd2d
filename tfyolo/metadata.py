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


# A saved Keras detector carries its metadata inside the file: an entry of the `.keras` zip, an attribute of the
# `.h5` file. Two models in one folder never share (or overwrite) each other's metadata. `metadata.json` beside a
# model is read only for models saved before that.
MODEL_FILE_ENTRY = "tfyolo_metadata.json"
H5_ATTRIBUTE = "tfyolo_metadata"
LEGACY_NAME = "metadata.json"


def embed_in_model_file(path, metadata):
    """Writes `metadata` into the saved Keras model at `path` (.keras or .h5); a model file has it once."""
    path = Path(path)
    text = json.dumps(metadata, indent=2)
    if path.suffix == ".h5":
        import h5py

        with h5py.File(path, "a") as stream:
            stream.attrs[H5_ATTRIBUTE] = text
        return
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        if MODEL_FILE_ENTRY in archive.namelist():
            raise DataError(f"{path}: already holds {MODEL_FILE_ENTRY}; metadata is written once, when it is saved.")
        archive.writestr(MODEL_FILE_ENTRY, text)


def replace_model_file_metadata(path, metadata):
    """Rewrites the metadata inside the model file at `path` (in place; the zip is rebuilt without the old entry)."""
    path = Path(path)
    if path.suffix == ".h5":
        embed_in_model_file(path, metadata)
        return
    rebuilt = path.with_name(f".{path.name}.rewrite")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            if item.filename != MODEL_FILE_ENTRY:
                target.writestr(item, source.read(item.filename))
    embed_in_model_file(rebuilt, metadata)
    rebuilt.replace(path)


def read_model_file_metadata(path):
    """The metadata inside a saved Keras model (.keras or .h5), or None."""
    path = Path(path)
    try:
        if path.suffix == ".h5":
            import h5py

            with h5py.File(path, "r") as stream:
                raw = stream.attrs.get(H5_ATTRIBUTE)
            return None if raw is None else json.loads(raw)
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(MODEL_FILE_ENTRY))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        return None


def find_model_metadata(model_path):
    """What a model says about itself: embedded in it (.tflite, .keras, .h5), else a metadata.json in its folder (a
    model saved before metadata went inside the file); None if nothing."""
    path = Path(model_path)
    if path.is_file():
        reader = read_embedded_metadata if path.suffix == ".tflite" else read_model_file_metadata
        embedded = reader(path)
        if embedded is not None:
            return embedded
    folder = path if path.is_dir() else path.parent
    beside = folder / LEGACY_NAME
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
    trained_on = ((metadata or {}).get("source") or {}).get("train_data")
    if trained_on:
        raise DataError(
            f"{model_path}: imported from an Ultralytics checkpoint trained on {trained_on!r}, a path of the machine "
            "that trained it; pass --data DATA.yaml (its val split is scored, its train split calibrates)."
        )
    raise DataError(f"{model_path}: no --data given and the model carries no dataset metadata; pass --data DATA.yaml.")
