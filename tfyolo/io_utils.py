"""Atomic writes: a crash or a kill never leaves a half-written artifact under its final name."""

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path


def _umask_mode():
    """The mode a plain open() would give a new file (mkstemp's temporaries are private, 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def naming_os_errors(path):
    """An OSError raised inside the block without a file name (a full disk: "No space left on device.", h5py's
    "Unable to create file") is raised again naming `path`, so the one line a user reads says which file."""
    try:
        yield
    except OSError as error:
        # A name of ours is kept; none, or the hidden temporary beside `path`, becomes `path` itself.
        if error.filename and not Path(str(error.filename)).name.startswith("."):
            raise
        reason = error.strerror or " ".join(str(error).split()) or type(error).__name__
        raise OSError(error.errno, reason, str(path)) from error


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path` to write; on success it replaces `path`, on failure it vanishes.

    The suffix is kept, so writers that pick a format by extension (Keras' .keras / .h5) see the right one.
    """
    path = Path(path)
    with naming_os_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
        os.close(handle)
        try:
            yield temporary
            os.chmod(temporary, _umask_mode())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def atomic_write_bytes(path, data):
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path, data):
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def sha256_file(path, chunk_size=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_writable_folder(folder, what="--out"):
    """Creates `folder` if needed and proves a file can be written there, before any long work starts."""
    from tfyolo.errors import ConfigError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".tfyolo-write-check-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise ConfigError(f"{folder}: cannot write there ({error.strerror or error}); choose a writable {what}.")
    return folder


@contextlib.contextmanager
def locked(path):
    """An exclusive advisory lock on `path` (created if missing) for the duration of the block: two processes
    that update the same report take turns."""
    import fcntl

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
