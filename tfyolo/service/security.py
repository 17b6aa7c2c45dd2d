"""What the service trusts, and how little: a bearer token, bounded uploads, file types read from their bytes,
and calibration zips unpacked without ever leaving their folder or following a link."""

import hmac
import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

from tfyolo.errors import ConfigError, DataError

TOKEN_VARIABLE = "TFYOLO_API_TOKEN"
MIN_TOKEN_LENGTH = 16
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# A calibration set needs a few hundred images at most; these bound what one zip may unpack to (zip bombs).
MAX_ZIP_MEMBERS = 5000
MAX_ZIP_UNPACKED_BYTES = 2 << 30
MAX_COMPRESSION_RATIO = 200

# kind: (test on the first bytes, what a user should send)
MAGIC = {
    "tflite": (lambda head: head[4:8] == b"TFL3", "a .tflite flatbuffer"),
    "h5": (lambda head: head.startswith(b"\x89HDF\r\n\x1a\n"), "a Keras .h5"),
    "zip": (lambda head: head.startswith(b"PK\x03\x04"), "a zip"),
}


def load_token(token_file=None):
    """The API token from `--token-file`, else from $TFYOLO_API_TOKEN; refuses to run without one."""
    if token_file:
        token = Path(token_file).read_text().strip()
        source = str(token_file)
    else:
        token = os.environ.get(TOKEN_VARIABLE, "").strip()
        source = f"${TOKEN_VARIABLE}"
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"{source}: expected an API token of at least {MIN_TOKEN_LENGTH} characters, received "
            f"{len(token)}. Hint: export {TOKEN_VARIABLE}=$(python -c 'import secrets; print(secrets.token_hex(16))')"
        )
    return token


def token_matches(expected, presented):
    return bool(presented) and hmac.compare_digest(expected.encode(), presented.encode())


def sniff(path):
    """The kind of file at `path` from its bytes: tflite, h5, keras (a zip holding config.json), pt (a zip holding
    a pickle), zip, onnx, or None."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    for kind, (test, _) in MAGIC.items():
        if test(head):
            break
    else:
        return "onnx" if _is_onnx(path) else None
    if kind != "zip":
        return kind
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return None
    if "config.json" in names and any(name.endswith(".weights.h5") or name == "model.weights.h5" for name in names):
        return "keras"
    if any(PurePosixPath(name).name == "data.pkl" for name in names):
        return "pt"
    return "zip"


def _is_onnx(path):
    """ONNX has no magic number: it is an ONNX file when it parses as a ModelProto with a graph."""
    import onnx

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:
        return False
    return len(model.graph.node) > 0


def extract_images(archive_path, folder):
    """Unpacks the images of a calibration zip into `folder`, flat; returns how many. Refuses the whole zip when
    a member would land outside `folder` (absolute, `..`), is a link or a device, or the zip would unpack to more
    than the limits allow; other members (folders, text files) are skipped."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        archive = zipfile.ZipFile(archive_path)
    except zipfile.BadZipFile as error:
        raise DataError(f"calibration zip: not a readable zip ({error}).")
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise DataError(f"calibration zip: {len(members)} members, more than the {MAX_ZIP_MEMBERS} allowed.")
        total = sum(member.file_size for member in members)
        packed = max(sum(member.compress_size for member in members), 1)
        if total > MAX_ZIP_UNPACKED_BYTES or total / packed > MAX_COMPRESSION_RATIO:
            raise DataError(
                f"calibration zip: unpacks to {total:,} bytes ({total / packed:.0f}x its size); the limits are "
                f"{MAX_ZIP_UNPACKED_BYTES:,} bytes and {MAX_COMPRESSION_RATIO}x."
            )
        for member in members:
            name = PurePosixPath(member.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts or (name.parts and ":" in name.parts[0]):
                raise DataError(f"calibration zip: member {member.filename!r} points outside the archive; refused.")
            mode = member.external_attr >> 16
            if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise DataError(f"calibration zip: member {member.filename!r} is a link or a device; refused.")
        for member in members:
            name = PurePosixPath(member.filename.replace("\\", "/"))
            if member.is_dir() or name.suffix.lower() not in IMAGE_SUFFIXES or name.name.startswith("."):
                continue
            # Flattened, numbered names: two members with the same base name never overwrite each other.
            target = folder / f"{written:05d}_{name.name}"
            with archive.open(member) as source, open(target, "xb") as destination:
                while chunk := source.read(1 << 20):
                    destination.write(chunk)
            written += 1
    if written == 0:
        raise DataError(f"calibration zip: no images found; expected {', '.join(IMAGE_SUFFIXES)} files.")
    return written
