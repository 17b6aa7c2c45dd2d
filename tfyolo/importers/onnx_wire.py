"""Counts what an ONNX file would become before onnx parses it. Protobuf's parser builds one object per field entry
whatever the entry holds: a 40 MB graph of empty nodes (two bytes each) became 3.2 GB of objects. Walking the wire
format first costs the file's size in reads and refuses a file that holds more entries than any exported detector
needs, before the parse allocates them.

The walk enters every message-typed field of ONNX's own schema (read from onnx's descriptors, so a field a later
ONNX adds is walked too) and counts every field entry: a node's inputs, a tensor's dims and each value of an unpacked
array. A packed array or a raw_data blob is one entry: its values are stored as compactly as in the file."""

import functools
import mmap

from tfyolo.errors import ModelError

# Ultralytics' n-scale exports hold 11,000-18,000 entries (nodes, their inputs, the initializers' dims), and an
# x-scale repeats the same blocks about three times; a million leaves room for any detector and bounds the parse at
# about 100 MB of objects.
MAX_ONNX_ENTRIES = 1_000_000
# Messages inside messages: an exported detector's deepest is a graph input's dimension (model, graph, value info,
# type, tensor type, shape, dimension: 6 levels below the model); each subgraph (an If or Loop body) adds 3.
MAX_ONNX_DEPTH = 64


@functools.lru_cache(maxsize=1)
def message_fields():
    """{message full name: {field number: the field's message descriptor}} for ModelProto and every message it holds."""
    from onnx import ModelProto

    table, pending = {}, [ModelProto.DESCRIPTOR]
    while pending:
        descriptor = pending.pop()
        if descriptor.full_name in table:
            continue
        table[descriptor.full_name] = {f.number: f.message_type for f in descriptor.fields if f.message_type}
        pending += table[descriptor.full_name].values()
    return table


class _Walk:
    def __init__(self, data, path):
        self.data, self.path, self.entries = data, path, 0
        self.fields = message_fields()

    def malformed(self, what):
        return ModelError(f"{self.path}: not a readable ONNX model ({what}).")

    def varint(self, position, end):
        value, shift = 0, 0
        while position < end and shift < 70:
            byte = self.data[position]
            value |= (byte & 0x7F) << shift
            position += 1
            if byte < 0x80:
                return value, position
            shift += 7
        raise self.malformed(f"a varint cut short at byte {position}")

    def message(self, descriptor, start, end, depth):
        """Counts the entries of one `descriptor` message held in data[start:end], entering its message fields."""
        if depth > MAX_ONNX_DEPTH:
            raise ModelError(
                f"{self.path}: ONNX messages nested more than {MAX_ONNX_DEPTH} deep (graphs in nodes, types in types); "
                "an exported detector nests 6."
            )
        fields, position = self.fields[descriptor.full_name], start
        while position < end:
            tag, position = self.varint(position, end)
            self.entries += 1
            if self.entries > MAX_ONNX_ENTRIES:
                raise ModelError(
                    f"{self.path}: an ONNX graph of more than {MAX_ONNX_ENTRIES:,} entries (nodes, inputs, dims); "
                    "an exported detector holds tens of thousands. Export the model again."
                )
            wire = tag & 7
            if wire == 0:
                _, position = self.varint(position, end)
            elif wire == 1:
                position += 8
            elif wire == 5:
                position += 4
            elif wire == 2:
                length, position = self.varint(position, end)
                if position + length > end:
                    raise self.malformed(f"a field of {length} bytes past the end of its message at byte {position}")
                if tag >> 3 in fields:
                    self.message(fields[tag >> 3], position, position + length, depth + 1)
                position += length
            else:
                raise self.malformed(f"wire type {wire} at byte {position}")
        if position != end:
            raise self.malformed(f"a field past the end of its message at byte {end}")


def count_onnx_entries(path):
    """The number of field entries the ONNX file at `path` holds; ModelError in one line if it is malformed, holds
    more than MAX_ONNX_ENTRIES or nests graphs deeper than MAX_ONNX_DEPTH."""
    with open(path, "rb") as handle:
        try:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise ModelError(f"{path}: not a readable ONNX model (an empty file).")
    with data:
        from onnx import ModelProto

        walk = _Walk(data, path)
        walk.message(ModelProto.DESCRIPTOR, 0, len(data), 0)
        return walk.entries
