"""Names a converted model's inputs and outputs in a `serving_default` SignatureDef.

Converting from a frozen concrete function writes no SignatureDef and names the outputs after the graph's
`Identity` / `Identity_1` tensors, so a reader could only tell the box distribution from the class logits by
shape, which fails whenever the class count equals 4 * reg_max (64). The flatbuffer is rewritten with
TensorFlow's own object API: the tensors are renamed and the signature maps each output name to its tensor.
"""

from tfyolo.errors import ModelError

SIGNATURE_KEY = "serving_default"


def output_names(concrete_function):
    """{graph tensor name: output key} of a concrete function whose structured outputs are a dict."""
    return {tensor.name.split(":")[0]: key for key, tensor in concrete_function.structured_outputs.items()}


def add_signature(model_content, outputs, input_name):
    """Returns `model_content` with its output tensors renamed by `outputs` ({graph name: key}) and one
    `serving_default` SignatureDef mapping `input_name` and each key to its tensor."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_content))
    subgraph = model.subgraphs[0]
    output_maps = []
    for index in subgraph.outputs:
        graph_name = subgraph.tensors[index].name.decode()
        if graph_name not in outputs:
            raise ModelError(
                f"converted output tensor {graph_name!r} is none of the function's outputs {sorted(outputs)}."
            )
        subgraph.tensors[index].name = outputs[graph_name].encode()
        output_maps.append(schema.TensorMapT(name=outputs[graph_name], tensorIndex=index))
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


def signature_outputs(interpreter):
    """{output key: tensor index} of the model's `serving_default` signature, or {} when it has none."""
    signatures = interpreter._get_full_signature_list()
    return dict(signatures.get(SIGNATURE_KEY, {}).get("outputs", {}))
