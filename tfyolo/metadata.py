"""Model metadata: beside a .keras file as metadata.json, inside a .tflite as an appended zip.

The .tflite form is the one Ultralytics-style readers understand: a zip archive holding `metadata.json`
appended after the flatbuffer (interpreters ignore trailing bytes; zip readers find the archive from the end).
"""

import io
import json
import zipfile
import zlib
from pathlib import Path

from tfyolo.errors import DataError, ModelError

EMBEDDED_NAME = "metadata.json"
# What a metadata entry of a model's zip may be before it is read. tfyolo writes a few KB (class names, recipe,
# provenance; 10000 long class names are 200 KB), so 1 MiB holds any real one, and JSON parses it into at most ~25 MB
# of Python objects. zipfile inflates deflate a bounded chunk at a time and stops at the declared size; bzip2 and
# lzma it inflates a whole chunk at once (a 2 KB bzip2 entry took 4.9 GB), so only stored or deflated is read.
MAX_METADATA_BYTES = 1 << 20
METADATA_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# JSON deflates 2-5 times; deflate itself cannot pass ~1030. Anything above this is a bomb, whatever it declares.
MAX_METADATA_RATIO = 100


def embed_metadata(tflite_bytes, metadata):
    buffer = io.BytesIO()
    buffer.write(tflite_bytes)
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(EMBEDDED_NAME, json.dumps(metadata, indent=2))
    return buffer.getvalue()


def read_embedded_metadata(source, where=None):
    """The metadata embedded in a .tflite (path or bytes), or None; an entry that could inflate past
    MAX_METADATA_BYTES is refused in one line naming `where` (default: the path) (`read_json_entry`)."""
    is_bytes = isinstance(source, (bytes, bytearray))
    where = where or ("tflite bytes" if is_bytes else str(source))
    data = bytes(source) if is_bytes else Path(source).read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return read_json_entry(archive, EMBEDDED_NAME, where)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error):  # no zip, or a damaged one: no metadata
        return None


def read_json_entry(archive, name, where):
    """The JSON object in entry `name` of the open zip `archive`, or None if there is none (no entry, not JSON, not
    an object). The entry's method, declared size and ratio are checked before a byte is inflated, and at most
    MAX_METADATA_BYTES are read whatever it declares."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    problem = _entry_problem(info)
    if problem:
        raise ModelError(
            f"{where}: its {name} {problem}; expected at most {MAX_METADATA_BYTES:,} bytes, stored or deflated."
        )
    with archive.open(info) as stream:
        raw = stream.read(MAX_METADATA_BYTES + 1)
    if len(raw) > MAX_METADATA_BYTES:
        raise ModelError(f"{where}: its {name} inflates past {MAX_METADATA_BYTES:,} bytes; expected at most that.")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser's depth
        return None
    return value if isinstance(value, dict) else None


def _entry_problem(info):
    """What makes zip entry `info` unsafe to inflate, or None."""
    if info.compress_type not in METADATA_COMPRESSIONS:
        return f"is compressed with method {info.compress_type}"
    if info.file_size > MAX_METADATA_BYTES:
        return f"declares {info.file_size:,} bytes"
    if info.file_size > MAX_METADATA_RATIO * max(info.compress_size, 1):
        return f"declares {info.file_size:,} bytes from {info.compress_size:,} (a ratio above {MAX_METADATA_RATIO})"
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


def read_h5_text_attribute(stream, name, limit, where):
    """The text of attribute `name` of the open h5py file `stream`, or None if it has none; refused in one line naming
    `where` and the attribute unless it is one string of at most `limit` bytes, so JSON never parses more. A
    fixed-length string's size is read from its header, before its bytes; a variable-length one is measured once
    read (HDF5 keeps its bytes in the file, unfiltered: it is no larger than the file)."""
    import h5py

    if name not in stream.attrs:
        return None
    attribute = stream.attrs.get_id(name)
    string = h5py.check_string_dtype(attribute.dtype)
    if string is None or attribute.shape != ():
        raise ModelError(
            f"{where}: its attribute {name!r} is not one string (shape {attribute.shape}, type {attribute.dtype}); "
            "expected a JSON text."
        )
    size = string.length
    if size is None or size <= limit:
        raw = stream.attrs[name]
        size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > limit:
        raise ModelError(f"{where}: its attribute {name!r} holds {size:,} bytes; expected at most {limit:,}.")
    return raw


def read_model_file_metadata(path):
    """The metadata inside a saved Keras model (.keras or .h5), or None."""
    path = Path(path)
    try:
        if path.suffix == ".h5":
            import h5py

            with h5py.File(path, "r") as stream:
                raw = read_h5_text_attribute(stream, H5_ATTRIBUTE, MAX_METADATA_BYTES, path)
            value = None if raw is None else json.loads(raw)
            if value is not None and not isinstance(value, dict):
                raise ModelError(
                    f"{path}: its attribute {H5_ATTRIBUTE!r} holds a JSON {type(value).__name__}; "
                    "a model's metadata is a JSON object."
                )
            return value
        with zipfile.ZipFile(path) as archive:
            return read_json_entry(archive, MODEL_FILE_ENTRY, path)
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, KeyError, ValueError, RecursionError):
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
        if beside.stat().st_size > MAX_METADATA_BYTES:
            raise ModelError(f"{beside}: {beside.stat().st_size:,} bytes; expected at most {MAX_METADATA_BYTES:,}.")
        try:
            return json.loads(beside.read_bytes())
        except (ValueError, RecursionError):
            raise ModelError(f"{beside}: not valid JSON; the metadata of a model saved beside it is a JSON object.")
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
