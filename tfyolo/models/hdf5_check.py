"""What the HDF5 weights of a Keras model file may be before Keras reads them.

Keras reads each weight with h5py, and HDF5 reads a dataset wherever its header says the bytes are: in another file
of the machine (external storage: `/etc/passwd` would become a kernel and come back inside the converted artifact),
in other files' datasets (a virtual layout), behind an external or soft link, through a decompression filter (a
bomb), or past the end of the file (HDF5 reads zeros there: a 4 GiB kernel that was never written). tf_keras writes
none of these: every weight is a dataset of numbers, contiguous, unfiltered, inside the file, reached by a hard link.
So the tree is walked first, reading headers only, never data, and anything else is refused.
"""

import io

from tfyolo.errors import ModelError

# A detector has a few thousand weights at most (YOLOv8x with QAT wrappers); a file of more objects is refused
# before walking it takes long.
MAX_OBJECTS = 100_000
NUMBER_KINDS = "fiub"  # float, int, unsigned, bool: what a weight holds
EXPECTED = (
    "tfyolo reads weights as tf_keras writes them: numbers, stored contiguously and unfiltered inside the file itself, "
    "reached by hard links"
)


class _Refused(Exception):
    """`what` is wrong with object `name` of the tree; said once, with the file's name, by `check_hdf5_weights`."""

    def __init__(self, name, what):
        super().__init__(name, what)
        self.name, self.what = name, what


def check_hdf5_weights(source, size, where):
    """Raises ModelError unless every object in the HDF5 file `source` (a path, or a file object of `size` bytes) is
    a group or a dataset tf_keras writes: see the module's docstring. `where` names the file in the error."""
    import h5py

    try:
        with h5py.File(source, "r") as stream:
            _walk(stream, size)
    except _Refused as refused:
        raise ModelError(f"{where}: refused before loading: {refused.name[:80]!r} {refused.what}; {EXPECTED}.")
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise ModelError(f"{where}: not a readable HDF5 weights file ({type(error).__name__}: {error}).")


def _walk(root, size):
    """Each object reached from the root once (a group linked twice is not walked twice); returns nothing, raises
    _Refused at the first object tfyolo does not write."""
    import h5py

    top = root["/"]
    pending, seen, declared = [top], {top.id}, 0
    while pending:
        group = pending.pop()
        for name in group:
            path = f"{group.name.rstrip('/')}/{name}"
            # The link's own type, read without following it: an external link opens another file.
            kind = group.id.links.get_info(name.encode()).type
            if kind != h5py.h5l.TYPE_HARD:
                raise _Refused(path, f"is {LINK_KINDS.get(kind, 'a user-defined')} link")
            item = group[name]
            if item.id in seen:
                continue
            seen.add(item.id)
            if len(seen) > MAX_OBJECTS:
                raise _Refused(path, f"is one object too many: a detector's weights are fewer than {MAX_OBJECTS:,}")
            if isinstance(item, h5py.Group):
                pending.append(item)
            elif isinstance(item, h5py.Dataset):
                declared += _dataset_bytes(item, path, size)
                if declared > size:
                    raise _Refused(path, f"brings the bytes the datasets declare to {declared:,}, more than the file's")
            else:
                raise _Refused(path, f"is a {type(item).__name__}, not a group or a dataset")


LINK_KINDS = {1: "a soft", 64: "an external"}
LAYOUTS = {0: "compact", 2: "chunked", 3: "virtual"}


def _dataset_bytes(dataset, path, size):
    """The bytes `dataset` declares, once its header shows they lie inside the file, as tf_keras writes them."""
    import h5py

    plist = dataset.id.get_create_plist()
    if plist.get_external_count():
        raise _Refused(path, f"stores its data in {plist.get_external_count()} external file(s)")
    if plist.get_nfilters():
        filters = [plist.get_filter(index)[0] for index in range(plist.get_nfilters())]
        raise _Refused(path, f"passes its data through HDF5 filter(s) {filters}")
    layout = plist.get_layout()
    if layout != h5py.h5d.CONTIGUOUS:
        raise _Refused(path, f"has a {LAYOUTS.get(layout, 'unknown')} layout, not a contiguous one")
    if dataset.dtype.kind not in NUMBER_KINDS:
        raise _Refused(path, f"holds {dataset.dtype} values, not numbers")
    declared = dataset.size * dataset.dtype.itemsize
    offset = dataset.id.get_offset()
    if declared and (offset is None or dataset.id.get_storage_size() != declared or offset + declared > size):
        # Never written (HDF5 would make up zeros), or its header points past the end of the file.
        raise _Refused(path, f"declares {declared:,} bytes that the {size:,}-byte file does not hold")
    return declared


class FileWindow(io.RawIOBase):
    """Bytes [start, start + size) of the open binary file `handle`, read as a file of their own: a zip member stored
    uncompressed, walked by h5py without copying it into memory."""

    def __init__(self, handle, start, size):
        super().__init__()
        self.handle, self.start, self.size, self.position = handle, start, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.position

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer):
        count = max(0, min(len(buffer), self.size - self.position))
        self.handle.seek(self.start + self.position)
        data = self.handle.read(count)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)
