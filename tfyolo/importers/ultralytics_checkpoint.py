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


class ModuleRecord:
    """What a pickled torch / Ultralytics module held (`_parameters`, `_buffers`, `_modules`, `i`, `f`, `type`,
    `nc`, `names`, `yaml`, ...), as plain attributes. It has no behaviour: nothing of the checkpoint runs."""

    type_name = "module"

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {"state": state})

    def children(self):
        return dict(self.__dict__.get("_modules") or {})

    def state_dict(self, prefix=""):
        """{dotted name: numpy array} of every parameter and buffer below this module, as torch names them."""
        tensors = {}
        for group in ("_parameters", "_buffers"):
            for name, value in (self.__dict__.get(group) or {}).items():
                if value is not None:
                    tensors[f"{prefix}{name}"] = value
        for name, child in self.children().items():
            if isinstance(child, ModuleRecord):
                tensors.update(child.state_dict(f"{prefix}{name}."))
        return tensors

    def __repr__(self):
        return f"<{self.type_name} record>"


@dataclasses.dataclass(frozen=True)
class StorageType:
    name: str
    dtype: type


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """torch._utils._rebuild_tensor_v2: a view of `storage` (a 1-D numpy array), copied into its own array."""
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=tuple(size), strides=tuple(step * itemsize for step in stride)
    )
    return np.array(view)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _size(*values):
    return tuple(*values) if values else ()


ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch", "Size"): _size,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a checkpoint's data.pkl, building only what `find_class` allows."""

    def __init__(self, data, archive, prefix, source):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.source = archive, prefix, source
        self._records = {}

    def find_class(self, module, name):
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

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], StorageType)):
            raise ModelError(f"{self.source}: unexpected persistent id {pid!r} in its pickle.")
        _, storage_type, key, _, numel = pid
        entry = f"{self.prefix}data/{key}"
        try:
            raw = self.archive.read(entry)
        except KeyError:
            raise ModelError(f"{self.source}: tensor storage {entry} is missing from the archive.")
        values = np.frombuffer(raw, dtype=np.dtype(storage_type.dtype).newbyteorder("<"))
        if values.size < numel:
            raise ModelError(f"{self.source}: {entry} holds {values.size} values, the pickle expects {numel}.")
        return values


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
        except ModelError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
            raise ModelError(f"{path}: damaged or not a checkpoint ({type(error).__name__}: {error}).")
