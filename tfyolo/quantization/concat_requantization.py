"""The requantizing QUANTIZE ops ai-edge-quantizer puts before a concatenation, and what tfyolo does about them.

TFLite's int8 CONCATENATION copies bytes: every input must be on the output's grid. TFLiteConverter gives each input
the output's scale (a branch with a small range is computed on the grid of the widest one, which is where most of
its lost point of COCO mAP goes); ai-edge-quantizer computes each input on its own grid and inserts a QUANTIZE op
that requantizes it onto the output's, so the value is rounded twice. On the COCO YOLO26n at 640 px those ops move
4.7 million int8 values per image. Two rewrites take that to 3.0 million (29 ops to 19; counted on seed 0's files)
where the own grids bought nothing; XNNPACK requantizes fast, and the time measured did not change (seed 0's int8
1.03-1.04x TFLiteConverter's with either, in three scratch runs of 100 interleaved rounds; docs/quantization.md):

- `share_sole_inputs`: an input whose values go nowhere but the concatenation (a head level's prediction, reshaped
  for the output; an attention head's output) ends on the output's grid whatever it is computed on, where both are
  of one bit width. Computed there at once it is rounded once instead of twice, onto the same final grid, and its
  QUANTIZE op goes.
- `hoist_upsample_requantization`: an upsampled map requantized for the concatenation is requantized before the
  nearest-neighbour upsampling instead, on a quarter of the values. Requantizing is elementwise and the upsampling
  copies values, so the two orders give the same bytes.

An input that also feeds another layer keeps its own grid (a coarser one would reach that layer too), unless a
recipe's `concat_shared_range` says otherwise (`share_concatenation_ranges`).
"""

from collections import Counter

import numpy as np

# Ops whose int8 output takes its input's scale in ai-edge-quantizer: a range set on a concatenation's input is only
# kept without a requantize if it is set on every tensor up the chain of these to the op that computes it.
SCALE_CARRIERS = ("RESHAPE", "RESIZE_NEAREST_NEIGHBOR", "MAX_POOL_2D", "PAD")


def _graph(content):
    """(ops, {tensor index: name}, {tensor index: its producing op}, {tensor index: how many op inputs read it},
    graph output indices) of the TFLite model `content`."""
    from tfyolo.tflite_runtime import read_graph

    interpreter, ops, tensors = read_graph(content)
    names = {index: detail["name"] for index, detail in tensors.items()}
    producer = {index: op for op in ops for index in op["outputs"]}
    readers = Counter(index for op in ops for index in op["inputs"])
    outputs = {detail["index"] for detail in interpreter.get_output_details()}
    return ops, names, producer, readers, outputs


def _carrier_chain(index, producer, only_reader=None):
    """`index` and the tensors up its chain of `SCALE_CARRIERS` to the op that computes it; with `only_reader`
    ({tensor: readers}), None unless each tensor of the chain is read by the next op alone."""
    chain = [index]
    while True:
        if only_reader is not None and only_reader[chain[-1]] != 1:
            return None
        op = producer.get(chain[-1])
        if op is None or op["op_name"] not in SCALE_CARRIERS:
            return chain
        chain.append(op["inputs"][0])


def share_sole_inputs(content, ranges, int16_pattern=None):
    """`ranges` ({tensor name: {"min", "max"}}) where each CONCATENATION input of the fp32 model `content` that
    nothing else reads, up its chain of `SCALE_CARRIERS`, takes the output's range (a graph output keeps its own).
    int16_pattern: a compiled regex on tensor names, the recipe's 16-bit layers (`aeq.layer_regex`); a chain is
    shared only where it has the concatenation's bit width, as a range is a grid only at one width (an 8-bit level
    of a 16-bit output keeps its own, finer grid).

    Later concatenations go first, so one that feeds another alone passes the outer range on to its inputs."""
    ops, names, producer, readers, outputs = _graph(content)

    def width(index):
        return 16 if int16_pattern is not None and int16_pattern.match(names[index]) else 8

    ranges = dict(ranges)
    for op in reversed(ops):
        joined = op["outputs"][0]
        if op["op_name"] != "CONCATENATION" or names[joined] not in ranges:
            continue
        for index in op["inputs"]:
            chain = _carrier_chain(index, producer, only_reader=readers)
            if not chain or any(tensor in outputs or names[tensor] not in ranges for tensor in chain):
                continue
            if any(width(tensor) != width(joined) for tensor in chain):
                continue
            # A copy each: ai-edge-quantizer writes fixed ranges (a sigmoid's [0, 1)) into the summary it is given.
            ranges.update({names[tensor]: dict(ranges[names[joined]]) for tensor in chain})
    return ranges


def share_concatenation_ranges(content, ranges, min_share):
    """`ranges` ({tensor name: {"min", "max"}}) where each CONCATENATION input of the fp32 model `content` whose
    range lies inside the output's and spans at least `min_share` of it takes the output's range, with every tensor
    up its chain of `SCALE_CARRIERS`, whatever else reads them.

    Such a value is rounded twice, on its own grid and on the output's. Where the two grids differ little, one
    rounding on the output's grid loses less than the second rounding adds (a MUL output at scale 0.0238 requantized
    to 0.0253 gains 6% resolution and pays up to half a 0.0253 step again); but the layers that read the input
    elsewhere read it on the coarser grid too."""
    ops, names, producer, _, _ = _graph(content)
    ranges = dict(ranges)
    for op in ops:
        output = ranges.get(names[op["outputs"][0]]) if op["op_name"] == "CONCATENATION" else None
        if output is None:
            continue
        low, high = np.min(output["min"]), np.max(output["max"])
        for index in op["inputs"]:
            own = ranges.get(names[index])
            if own is None or np.min(own["min"]) < low - 1e-6 or np.max(own["max"]) > high + 1e-6:
                continue
            if np.max(own["max"]) - np.min(own["min"]) < min_share * (high - low):
                continue
            chain = _carrier_chain(index, producer)
            ranges.update({names[tensor]: dict(output) for tensor in chain if names[tensor] in ranges})
    return ranges


def hoist_upsample_requantization(content):
    """The int8 TFLite model `content` with each RESIZE_NEAREST_NEIGHBOR -> QUANTIZE pair (the upsampled map read by
    that QUANTIZE alone, both of one integer type) turned into QUANTIZE -> RESIZE_NEAREST_NEIGHBOR: the same values,
    requantized before they are copied. The upsampling's output tensor takes the requantized grid and the small
    shape."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from tfyolo.tflite_runtime import builtin_code

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    graph = model.subgraphs[0]
    code = [builtin_code(model.operatorCodes[op.opcodeIndex]) for op in graph.operators]
    readers = Counter(index for op in graph.operators for index in op.inputs)
    producer_at = {index: position for position, op in enumerate(graph.operators) for index in op.outputs}
    for position, op in enumerate(graph.operators):
        if code[position] != schema.BuiltinOperator.QUANTIZE:
            continue
        upsampled = op.inputs[0]
        resize_at = producer_at.get(upsampled)
        if resize_at is None or code[resize_at] != schema.BuiltinOperator.RESIZE_NEAREST_NEIGHBOR:
            continue
        if readers[upsampled] != 1 or upsampled in graph.outputs:
            continue
        resize = graph.operators[resize_at]
        small, requantized = resize.inputs[0], op.outputs[0]
        # A requantize within one integer type only (a QUANTIZE from float is the model's input boundary; one between
        # int8 and int16 would move the upsampling to the other type), and an upsampling only: fewer values first.
        if graph.tensors[small].type != graph.tensors[requantized].type:
            continue
        if np.prod(graph.tensors[small].shape) >= np.prod(graph.tensors[upsampled].shape):
            continue
        # The upsampled tensor becomes the small requantized one between the two ops, under the QUANTIZE output's
        # name; the upsampling's output keeps the upsampling's name, as every tool that matches tensors by name
        # against the float model expects.
        between, output = graph.tensors[upsampled], graph.tensors[requantized]
        between.shape = np.array(graph.tensors[small].shape)
        between.shapeSignature = graph.tensors[small].shapeSignature
        between.quantization = output.quantization
        between.name, output.name = output.name, between.name
        op.inputs[0], op.outputs[0] = small, upsampled
        resize.inputs[0], resize.outputs[0] = upsampled, requantized
        # The QUANTIZE now runs first: the two ops trade places.
        graph.operators[resize_at], graph.operators[position] = op, resize
        code[resize_at], code[position] = code[position], code[resize_at]
        producer_at[upsampled], producer_at[requantized] = resize_at, position
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
