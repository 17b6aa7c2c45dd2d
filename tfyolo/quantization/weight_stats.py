"""What a converted model's integer kernels really hold: distinct values per output channel (clustering) and the
share of zeros (pruning), read from the flatbuffer's constant tensors; and the size a compressor sees."""

import gzip

import numpy as np

from tfyolo.tflite_runtime import read_graph

CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def int8_kernels(content):
    """Yields (op name, kernel array) for every convolution of `content` whose kernel is int8."""
    interpreter, ops, details = read_graph(content)
    for op in ops:
        if op["op_name"] in CONV_OPS:
            detail = details[op["inputs"][1]]
            if np.dtype(detail["dtype"]) == np.int8:
                yield op["op_name"], interpreter.get_tensor(detail["index"])


def kernel_stats(content):
    """{"kernels", "max_values_per_channel", "sparsity"} over the int8 convolution kernels of `content`; None when it
    has none (a float artifact). Output channels are axis 0 of CONV_2D kernels and axis 3 of depthwise ones."""
    most, zeros, total, kernels = 0, 0, 0, 0
    for op_name, kernel in int8_kernels(content):
        axis = 3 if op_name == "DEPTHWISE_CONV_2D" else 0
        channels = np.moveaxis(kernel, axis, 0).reshape(kernel.shape[axis], -1)
        most = max(most, max(len(np.unique(channel)) for channel in channels))
        zeros += int(np.count_nonzero(kernel == 0))
        total += kernel.size
        kernels += 1
    if not kernels:
        return None
    return {"kernels": kernels, "max_values_per_channel": most, "sparsity": zeros / total}


def gzip_size(content):
    """Bytes after gzip -9: what clustering and pruning save once the file is compressed for shipping."""
    return len(gzip.compress(content, 9))


# Zero counts per layer are rounded by the pruning schedule, and a few layers are small.
SPARSITY_TOLERANCE = 0.02


def promised_structure(metadata, read_metadata):
    """What a model's training promised its kernels hold: `{"method", "clusters", "sparsity"}` from `tfyolo compress`,
    found in the model's own metadata or, for a sparsity-preserving QAT model, in its float model's; None otherwise.
    read_metadata: path -> metadata dict or None."""
    metadata = metadata or {}
    if metadata.get("compress"):
        return metadata["compress"]
    if metadata.get("qat_preserve") and metadata.get("qat_from"):
        return (read_metadata(metadata["qat_from"]) or {}).get("compress")
    return None


def broken_promise(stats, promise):
    """Why the int8 kernels in `stats` do not hold what `promise` says, or None when they do (or nothing was
    promised)."""
    if not promise or stats is None:
        return None
    if promise["method"] == "cluster" and stats["max_values_per_channel"] > promise["clusters"]:
        return (
            f"its int8 kernels hold up to {stats['max_values_per_channel']} values in a channel, more than the "
            f"{promise['clusters']} clusters its model was trained to"
        )
    if promise["method"] == "prune" and stats["sparsity"] < promise["sparsity"] - SPARSITY_TOLERANCE:
        return (
            f"its int8 kernels are {stats['sparsity']:.1%} zeros, less than the {promise['sparsity']:.0%} its "
            "model was pruned to"
        )
    return None
