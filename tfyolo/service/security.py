"""What the service trusts, and how little: a bearer token, bounded uploads, file types read from their bytes,
and calibration zips unpacked without ever leaving their folder or following a link."""

import hmac
import os
import stat
import zipfile
import zlib
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


def derived_secret(token, purpose):
    """A value derived from the API token for one `purpose` ("session": the browser's cookie; "form": the token its
    pages' forms carry): neither reveals the token, and one cannot be made from the other."""
    return hmac.new(token.encode(), f"tfyolo {purpose}".encode(), "sha256").hexdigest()


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


# ONNX has no magic number. The door reads the file's outer protobuf layer without parsing it (the model itself is
# parsed by the job process, the importer's limits applying there): every top-level field must be one of ModelProto's,
# with its wire type (0: varint, 2: length-delimited), and lengths that end exactly at the end of the file; a graph
# (field 7) must be present. A 40 MB file of empty nodes costs the web process 40 MB of reads, not 3 GB of objects.
ONNX_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
ONNX_GRAPH_FIELD = 7
MAX_ONNX_TOP_LEVEL_FIELDS = 100_000


def _varint(handle):
    """The next base-128 varint of `handle`, or None at the end of the file or for one longer than 10 bytes."""
    value = 0
    for shift in range(0, 70, 7):
        byte = handle.read(1)
        if not byte:
            return None
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
    return None


def _is_onnx(path):
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        has_graph = False
        for _ in range(MAX_ONNX_TOP_LEVEL_FIELDS):
            if handle.tell() == size:
                return has_graph
            tag = _varint(handle)
            if tag is None or ONNX_MODEL_FIELDS.get(tag >> 3) != tag & 7:
                return False
            length = _varint(handle)
            if length is None:
                return False
            if tag & 7 == 2:
                if handle.tell() + length > size:
                    return False
                has_graph = has_graph or (tag >> 3 == ONNX_GRAPH_FIELD and length > 0)
                handle.seek(length, os.SEEK_CUR)
    return False


def _is_special(member):
    """True for a member whose Unix mode bits say link, device, FIFO or socket. Zips written by other tools (Python's
    `writestr`, Windows archivers) set permission bits and no file type at all: those are regular files."""
    file_type = stat.S_IFMT(member.external_attr >> 16)
    return file_type not in (0, stat.S_IFREG, stat.S_IFDIR)


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
            if _is_special(member):
                raise DataError(f"calibration zip: member {member.filename!r} is a link or a device; refused.")
        for member in members:
            name = PurePosixPath(member.filename.replace("\\", "/"))
            if member.is_dir() or name.suffix.lower() not in IMAGE_SUFFIXES or name.name.startswith("."):
                continue
            # Flattened, numbered names keeping only the suffix: two members with the same base name never overwrite
            # each other, and a member's name (300 characters, odd bytes) never becomes a server file name.
            target = folder / f"{written:05d}{name.suffix.lower()}"
            try:
                with archive.open(member) as source, open(target, "xb") as destination:
                    while chunk := source.read(1 << 20):
                        destination.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
                raise DataError(f"calibration zip: member {member.filename!r} cannot be read ({error}); refused.")
            written += 1
    if written == 0:
        raise DataError(f"calibration zip: no images found; expected {', '.join(IMAGE_SUFFIXES)} files.")
    return written


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: a request body is cut at `max_bytes`, counted as it streams in, and answered 413.

    Starlette spools a multipart body to a temporary file before a route sees it, so a limit checked in the route
    would come after the whole body was stored. A declared Content-Length over the limit is refused before one
    byte is read; a body that lies about its length, or declares none, is stopped at the first chunk past it (the
    app's own answer to the interrupted read, a 400 from the form parser, is replaced by the 413)."""

    def __init__(self, app, max_bytes):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._refuse(send)
        state = {"received": 0, "exceeded": False, "started": False}

        async def counted_receive():
            if state["exceeded"]:
                raise BodyTooLarge()
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["exceeded"] = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message):
            if state["exceeded"]:
                return  # the app's answer to a cut body; the 413 goes out instead
            state["started"] = state["started"] or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            pass
        if state["exceeded"] and not state["started"]:
            await self._refuse(send)

    async def _refuse(self, send):
        import json

        body = json.dumps(
            {"detail": f"request body larger than the {self.max_bytes:,}-byte limit (--max-upload-mb)"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})
