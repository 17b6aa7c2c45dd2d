"""Names a converted model's inputs and outputs in a `serving_default` SignatureDef.

Converting from a frozen concrete function writes no SignatureDef and names the outputs after the graph's
`Identity` / `Identity_1` tensors, so a reader could only tell the box distribution from the class logits by
shape, which fails whenever the class count equals 4 * reg_max (64). The flatbuffer is rewritten with
TensorFlow's own object API: the tensors are renamed and the signature maps each output name to its tensor.
"""

from tfyolo.errors import ModelError
from tfyolo.tflite_runtime import SIGNATURE_KEY


def output_names(concrete_function):
    """[(graph tensor name, output key, static shape)] of a concrete function with dict outputs, in the order of
    its flattened outputs, which is the order the converter gives the model's outputs."""
    flat = concrete_function.outputs
    keys = sorted(concrete_function.structured_outputs)  # tf.nest flattens a dict by sorted key
    return [(tensor.name.split(":")[0], key, tuple(tensor.shape.as_list())) for tensor, key in zip(flat, keys)]


def add_signature(model_content, outputs, input_name):
    """Returns `model_content` with its output tensors renamed after `outputs` (see `output_names`) and one
    `serving_default` SignatureDef mapping `input_name` and each output key to its tensor.

    The converter keeps the function's output order; the tensor names it writes depend on the graph (`Identity`
    for a float model, the last op's name for a QAT model). So outputs are matched by position, and each one is
    checked by shape, and by name where the name is a graph output name.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_content))
    subgraph = model.subgraphs[0]
    if len(subgraph.outputs) != len(outputs):
        raise ModelError(f"the converted model has {len(subgraph.outputs)} outputs, the function {len(outputs)}.")
    graph_names = {graph_name for graph_name, _, _ in outputs}
    output_maps = []
    for index, (graph_name, key, shape) in zip(subgraph.outputs, outputs):
        tensor = subgraph.tensors[index]
        found = tensor.name.decode()
        if tuple(int(v) for v in tensor.shape) != shape or (found in graph_names and found != graph_name):
            raise ModelError(
                f"converted output {found!r} {tuple(tensor.shape)} does not line up with the function's output "
                f"{key!r} ({graph_name}, {shape})."
            )
        tensor.name = key.encode()
        output_maps.append(schema.TensorMapT(name=key, tensorIndex=index))
    (input_index,) = subgraph.inputs
    subgraph.tensors[input_index].name = input_name.encode()
    model.signatureDefs = [
        schema.SignatureDefT(
            inputs=[schema.TensorMapT(name=input_name, tensorIndex=input_index)],
            outputs=output_maps,
            signatureKey=SIGNATURE_KEY,
            subgraphIndex=0,
        )
    ]
    return flatbuffer_utils.convert_object_to_bytearray(model)
