"""Reads an Ultralytics `.pt` checkpoint with neither PyTorch nor the checkpoint's own code.

A `.pt` file is a zip: a pickle (`<stem>/data.pkl`) plus one raw entry per tensor storage (`<stem>/data/<key>`).
Unpickling runs whatever callables the pickle names, so this reader allows a short list of names only: torch's
tensor rebuilders and storage types (turned into numpy arrays), the torch and Ultralytics module classes (turned
into inert `ModuleRecord`s that hold their attributes and never run), and a few containers. Anything else, such as
`os.system`, is refused before it is called. The same guard as torch's `weights_only=True` loader, without torch.
"""

import collections
import dataclasses
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

from tfyolo.errors import ModelError

# Storage classes by name -> numpy dtype of their raw bytes (little-endian, as the checkpoint's byteorder says).
STORAGE_DTYPES = {
    "HalfStorage": np.float16,
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
MODULE_PREFIXES = ("torch.nn.modules.", "ultralytics.nn.", "ultralytics.utils")
# Bounds on what one checkpoint may unpack to, checked before anything is read (as the service's calibration zips
# are): a real YOLO checkpoint stores its entries uncompressed, the x scale's largest storage is ~0.3 GiB.
MAX_ENTRY_BYTES = 2 << 30
MAX_PICKLE_BYTES = 256 << 20
MAX_COMPRESSION_RATIO = 200
# And on all of them together: the storages a pickle references are kept whole, so entries each under the bound could
# add up to any amount. A real checkpoint's entries sum to its file size (a YOLOv8x's 0.13 GiB); the sum gets the bound
# of one entry, as the service's calibration zips do (2 GiB).
MAX_TOTAL_BYTES = MAX_ENTRY_BYTES
MAX_TENSOR_ELEMENTS = 1 << 31
MAX_TENSOR_RANK = 8
# The bytes all tensors together may copy out of the storages, as a multiple of the storages' own bytes: a model's
# tensors each view a storage of their own (a few may share one), while views repeating a storage over and over would
# turn a small file into any amount of memory.
MAX_COPIED_PER_STORED = 2


class CheckpointRefused(ModelError):
    """Raised from inside the unpickler; `read_checkpoint` names the file."""


class ModuleRecord:
    """What a pickled torch / Ultralytics module held (`_parameters`, `_buffers`, `_modules`, `i`, `f`, `type`,
    `nc`, `names`, `yaml`, ...), as plain attributes. It has no behaviour: nothing of the checkpoint runs."""

    type_name = "module"

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {"state": state})

    def children(self):
        modules = self.__dict__.get("_modules")
        return dict(modules) if isinstance(modules, dict) else {}

    def records(self, seen=None):
        """(dotted name, record) of this record ("") and of every record below it, parents first, each record once:
        under the first name that reaches it. Records may share children (torch pickles every Conv's activation as one
        module), and walking every path through records that share children at each level is exponential (a 2 KB
        file, 2^60 steps). `seen` (record ids), when given, is shared with other walks, so that none repeats another."""
        seen = set() if seen is None else seen
        seen.add(id(self))
        pending = [("", self)]
        while pending:
            name, record = pending.pop()
            yield name, record
            children = []
            for key, child in record.children().items():
                if isinstance(child, ModuleRecord) and id(child) not in seen:
                    seen.add(id(child))
                    children.append((f"{name}.{key}" if name else str(key), child))
            pending.extend(reversed(children))

    def state_dict(self, prefix=""):
        """{dotted name: numpy array} of every parameter and buffer below this module, as torch names them."""
        tensors = {}
        for name, record in self.records():
            here = f"{prefix}{name}." if name else prefix
            for group in ("_parameters", "_buffers"):
                values = record.__dict__.get(group)
                for key, value in values.items() if isinstance(values, dict) else ():
                    if value is not None:
                        tensors[f"{here}{key}"] = value
        return tensors

    def __repr__(self):
        return f"<{self.type_name} record>"


@dataclasses.dataclass(frozen=True)
class StorageType:
    name: str
    dtype: type


def _rebuild_tensor(storage, storage_offset, size, stride, *torch_arguments, count_copy=None):
    """torch._utils._rebuild_tensor_v2: a view of `storage` (a 1-D numpy array), copied into its own array.

    Every index the view can reach is checked against the storage first: numpy's `as_strided` reads whatever
    memory the strides point at, so a lying stride would read (or crash on) memory outside the storage. Then
    `count_copy(bytes)`, when given, is told what the copy will take, and may refuse it."""
    if not isinstance(storage, np.ndarray):
        raise CheckpointRefused(f"a tensor over {type(storage).__name__}, not a storage")
    shape, steps = _checked_view(storage.size, storage_offset, size, stride)
    if count_copy is not None:
        count_copy(int(np.prod(shape, dtype=object)) * storage.dtype.itemsize)
    if 0 in shape:
        return np.zeros(shape, storage.dtype)
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=shape, strides=tuple(step * itemsize for step in steps)
    )
    return np.array(view)


def _is_index(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _checked_view(numel, offset, size, stride):
    """(shape, strides) of a tensor view after proving that it stays inside a storage of `numel` elements."""
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride) <= MAX_TENSOR_RANK):
        raise CheckpointRefused(f"a tensor with size {size!r} and stride {stride!r}")
    if not (_is_index(offset) and all(map(_is_index, size)) and all(map(_is_index, stride))):
        raise CheckpointRefused(f"a tensor with offset {offset!r}, size {size!r}, stride {stride!r}")
    elements = int(np.prod(size, dtype=object))
    if elements > MAX_TENSOR_ELEMENTS:
        raise CheckpointRefused(f"a tensor of {elements:,} elements (more than {MAX_TENSOR_ELEMENTS:,})")
    if elements:
        last = offset + sum((extent - 1) * step for extent, step in zip(size, stride))
        if last >= numel:
            raise CheckpointRefused(
                f"a tensor (offset {offset}, size {list(size)}, stride {list(stride)}) reaching element {last:,} "
                f"of a storage of {numel:,}"
            )
    if elements > numel:
        # Only a stride that repeats elements (0, or steps that overlap) makes a view larger than its storage: torch
        # saves no such tensor in a model, and copied out it would turn a few bytes into gigabytes.
        raise CheckpointRefused(
            f"a tensor of {elements:,} elements (size {list(size)}, stride {list(stride)}) over a storage of "
            f"{numel:,}: its strides repeat elements"
        )
    return size, stride


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _size(*values):
    return tuple(*values) if values else ()


# torch._utils._rebuild_tensor_v2 is the unpickler's own `_rebuild_tensor`, which counts the bytes tensors copy.
ALLOWED = {
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch", "Size"): _size,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
}


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickles a checkpoint's data.pkl, building only what `find_class` allows.

    Python's own unpickler, not the C one: the C unpickler keeps its memo as an array as long as the highest index a
    PUT names and zeroes it, so one edited LONG_BINPUT index (up to 2^32) in a 137 KB checkpoint asked for up to 32
    GB; Python's keeps a dict of the entries there are. A checkpoint's pickle holds the module records only (the
    tensors are separate entries), ~140 KB for an n scale, which Python's unpickler reads in milliseconds."""

    def __init__(self, data, archive, prefix, source):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.source = archive, prefix, source
        self._records, self._storages = {}, {}
        self._stored_bytes = self._copied_bytes = 0

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor
        if (module, name) in ALLOWED:
            return ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name, STORAGE_DTYPES[name])
        if module.startswith(MODULE_PREFIXES) and name.isidentifier():
            key = f"{module}.{name}"
            if key not in self._records:
                self._records[key] = type(name, (ModuleRecord,), {"type_name": key})
            return self._records[key]
        raise ModelError(
            f"{self.source}: refused to load {module}.{name}: a checkpoint's pickle may only rebuild tensors and "
            "torch / Ultralytics module records, and anything else could run code. Not loaded."
        )

    def _rebuild_tensor(self, *arguments):
        """torch._utils._rebuild_tensor_v2, its copy counted by `_count_copy`."""
        return _rebuild_tensor(*arguments, count_copy=self._count_copy)

    def _count_copy(self, size):
        """Refuses a copy that takes the bytes all tensors copy out past MAX_COPIED_PER_STORED times the bytes of the
        storages read so far."""
        self._copied_bytes += size
        if self._copied_bytes > MAX_COPIED_PER_STORED * self._stored_bytes:
            raise CheckpointRefused(
                f"tensors copying {self._copied_bytes:,} bytes out of storages of {self._stored_bytes:,} "
                f"(more than {MAX_COPIED_PER_STORED}x): its views repeat the same storage"
            )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], StorageType)):
            # Described by its type, never repeated: it is the file's content (a damaged one held whole arrays).
            size = f" of {len(pid)} items" if isinstance(pid, (tuple, list)) else ""
            raise ModelError(
                f"{self.source}: its pickle names a storage by a {type(pid).__name__}{size}, not torch's "
                "('storage', type, key, location, size); damaged or not a checkpoint."
            )
        _, storage_type, key, _, numel = pid
        entry = f"{self.prefix}data/{key}"
        if entry in self._storages:
            return self._storages[entry]
        try:
            raw = self.archive.read(entry)
        except KeyError:
            raise ModelError(f"{self.source}: tensor storage {entry} is missing from the archive.")
        values = np.frombuffer(raw, dtype=np.dtype(storage_type.dtype).newbyteorder("<"))
        if not _is_index(numel) or values.size < numel:
            raise ModelError(f"{self.source}: {entry} holds {values.size} values, the pickle expects {numel!r}.")
        self._storages[entry] = values[:numel]
        self._stored_bytes += self._storages[entry].nbytes
        return self._storages[entry]


def read_checkpoint(path):
    """The checkpoint's top-level object (a dict for Ultralytics), with numpy tensors and module records."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found.")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ModelError(f"{path}: not a zip checkpoint (torch.save's format since 1.6); cannot read it safely.")
    with archive:
        _check_sizes(archive, path)
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ModelError(f"{path}: expected one <name>/data.pkl in the archive, found {pickles}.")
        prefix = pickles[0][: -len("data.pkl")]
        order = (
            archive.read(f"{prefix}byteorder").decode().strip()
            if f"{prefix}byteorder" in archive.namelist()
            else "little"
        )
        if order != "little":
            raise ModelError(f"{path}: tensors stored {order}-endian; only little-endian checkpoints are read.")
        try:
            return RestrictedUnpickler(archive.read(pickles[0]), archive, prefix, path).load()
        except CheckpointRefused as error:
            raise ModelError(f"{path}: refused: it describes {error}; not a checkpoint tfyolo reads.")
        except ModelError:
            raise
        except (
            pickle.UnpicklingError,
            EOFError,
            ValueError,
            TypeError,
            AttributeError,
            IndexError,
            KeyError,
            RecursionError,
            zipfile.BadZipFile,
        ) as error:
            raise ModelError(f"{path}: damaged or not a checkpoint ({type(error).__name__}: {str(error)[:200]}).")


def _check_sizes(archive, path):
    """Refuses an archive whose entries would unpack past the bounds, each or all together, before any entry is read:
    the sizes are the archive's own claims, and zipfile stops reading an entry at its claimed size."""
    for member in archive.infolist():
        limit = MAX_PICKLE_BYTES if member.filename.endswith(".pkl") else MAX_ENTRY_BYTES
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > limit or ratio > MAX_COMPRESSION_RATIO:
            raise ModelError(
                f"{path}: refused: entry {member.filename[:80]!r} unpacks to {member.file_size:,} bytes "
                f"({ratio:.0f}x its stored size); the limits are {limit:,} bytes and {MAX_COMPRESSION_RATIO}x."
            )
    total = sum(member.file_size for member in archive.infolist())
    if total > MAX_TOTAL_BYTES:
        raise ModelError(
            f"{path}: refused: its {len(archive.infolist())} entries unpack to {total:,} bytes in all; the limit is "
            f"{MAX_TOTAL_BYTES:,} bytes."
        )
