"""The TFLite tensors that hold a detector's predictions: the outputs of its prediction convolutions and every tensor
that carries their values on to the model's outputs (reshapes, the concatenation over the levels). What the decode
reads is exactly these values, so calibration treats them apart (`tfyolo.quantization.score_floor`,
`tfyolo.quantization.aeq.choose_ranges`)."""

import re

from tfyolo.errors import ConfigError
from tfyolo.models.prediction_outputs import PREDICTION_OUTPUTS
from tfyolo.quantization.aeq import layer_regex
from tfyolo.tflite_runtime import builtin_code, builtin_operator_names

# Ops whose output holds the same values as their (first) input: a prediction passes through them to the output.
VALUE_CARRIERS = ("RESHAPE", "CONCATENATION")


def prediction_tensors(model, output):
    """Indices of subgraph 0's tensors that hold `output` (a key of `PREDICTION_OUTPUTS`: the box distribution, the
    class logits, a segmenter's mask coefficients and prototypes) in a flatbuffer object-API `model`: the outputs of
    that output's prediction layers, then every tensor reached from them through `VALUE_CARRIERS` ops. An output
    the model does not have (a detector's masks) gives none; a missing box or class output is refused."""
    names = builtin_operator_names()
    subgraph = model.subgraphs[0]
    entry = PREDICTION_OUTPUTS[output]
    pattern = re.compile(layer_regex(entry.layers))
    found = {
        index
        for op in subgraph.operators
        for index in op.outputs
        if pattern.match(subgraph.tensors[index].name.decode())
    }
    # The signature's output of that name holds the predictions too: the last op of a detector built outside tfyolo's
    # layer names, or an output made by an op that is not a carrier (the MUL of the prototypes' SiLU).
    found |= {
        entry.tensorIndex
        for signature in model.signatureDefs or []
        for entry in signature.outputs or []
        if entry.name.decode() == output
    }
    if not found and not entry.required:
        return []
    if not found:
        raise ConfigError(f"the model has no prediction layers {list(entry.layers)} and no output named {output!r}.")
    changed = True
    while changed:
        changed = False
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            kind = names.get(builtin_code(code))
            if kind in VALUE_CARRIERS and set(op.inputs) & found and not set(op.outputs) <= found:
                found.update(op.outputs)
                changed = True
    return sorted(found)


def prediction_tensor_names(content):
    """{output: names of the tensors that hold it} for each output of `PREDICTION_OUTPUTS`, in the TFLite model at
    `content`: one parse and one walk, for every range rule that treats the predictions apart."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    tensors = model.subgraphs[0].tensors
    return {
        output: {tensors[index].name.decode() for index in prediction_tensors(model, output)}
        for output in PREDICTION_OUTPUTS
    }
