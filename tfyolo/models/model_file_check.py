"""What a model file may hold before Keras is allowed to read it.

Loading a Keras model deserializes its config: a `Lambda` layer's function is Python bytecode that runs when the
model is rebuilt, a config's `module` names a module to import, and an `activation` may name any function. tf_keras'
safe mode covers Lambda in the `.keras` format only, and a legacy `.h5` file runs it as it loads. So every file is
read as plain JSON first (`config.json` of a `.keras` zip, the `model_config` attribute of an `.h5`), and refused
unless each object in it is one that tfyolo's own builders, tfmot's QAT wrappers or Keras' initializers produce.
Nothing is imported, called or built before that check passes.
"""

import json
import zipfile
from pathlib import Path

from tfyolo.errors import ModelError

# Every layer class a tfyolo detector is made of (`tests/test_model_families.py` builds every family and proves
# its layers are all here), plus the Functional model itself and tfmot's QAT wrappers around them.
KNOWN_LAYERS = frozenset(
    {
        "Functional",
        "InputLayer",
        "Conv2D",
        "DepthwiseConv2D",
        "BatchNormalization",
        "Activation",
        "ReLU",
        "HardSwish",
        "Add",
        "Concatenate",
        "MaxPooling2D",
        "UpSampling2D",
        "ZeroPadding2D",
        "Reshape",
        "Permute",
        "Softmax",
        "Dot",
        "QuantizeWrapperV2",
        "QuantizeLayer",
    }
)
# The other objects a saved config may name: initializers, and tfmot's quantize configs, quantizers and activation
# wrappers (with tfyolo's own configs from `tfyolo.qat.quantize_configs`).
KNOWN_OBJECTS = frozenset(
    {
        "Zeros",
        "Ones",
        "Constant",
        "GlorotUniform",
        "GlorotNormal",
        "HeNormal",
        "HeUniform",
        "RandomNormal",
        "RandomUniform",
        "TruncatedNormal",
        "VarianceScaling",
        "QuantizeAwareActivation",
        "NoOpActivation",
        "Default8BitQuantizeConfig",
        "Default8BitOutputQuantizeConfig",
        "Default8BitActivationQuantizeConfig",
        "Default8BitConvQuantizeConfig",
        "NoOpQuantizeConfig",
        "OutputQuantizeConfig",
        "AllValuesQuantizer",
        "LastValueQuantizer",
        "MovingAverageQuantizer",
        "Default8BitConvWeightsQuantizer",
    }
)
KNOWN_MODULE_PREFIXES = ("keras.", "tf_keras.", "tensorflow_model_optimization.", "tfyolo.")
KNOWN_ACTIVATIONS = frozenset({"linear", "swish", "relu", "sigmoid", "softmax"})
CUSTOM_PACKAGE = "tfyolo"


def read_model_config(path):
    """The model config of a `.keras` or `.h5` file as parsed JSON, read without Keras."""
    path = Path(path)
    try:
        if path.suffix == ".h5":
            import h5py

            with h5py.File(path, "r") as stream:
                raw = stream.attrs.get("model_config")
        else:
            with zipfile.ZipFile(path) as archive:
                raw = archive.read("config.json")
    except (OSError, zipfile.BadZipFile, KeyError) as error:
        raise ModelError(f"{path}: not a Keras model file ({type(error).__name__}: {error}).")
    if raw is None:
        raise ModelError(f"{path}: holds no model config (weights only?); tfyolo loads whole Keras models.")
    try:
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: its model config is not valid JSON ({error}).")


def _refusal(path, where, what):
    return ModelError(
        f"{path}: refused before loading: {where} is {what}. A model file may only hold the layers tfyolo builds "
        "(Conv2D, BatchNormalization, activations, Add, Concatenate, ...); a Lambda or any other object could run "
        "code when Keras reads it."
    )


def _check_object(path, node, where):
    class_name = node.get("class_name")
    if class_name is not None:
        if class_name == "Lambda":
            raise _refusal(path, where, "a Lambda layer (Python code)")
        if class_name == "function":
            if node.get("config") not in KNOWN_ACTIVATIONS:
                raise _refusal(path, where, f"a function {str(node.get('config'))[:60]!r}")
        elif class_name not in KNOWN_LAYERS | KNOWN_OBJECTS:
            raise _refusal(path, where, f"a {str(class_name)[:60]!r}")
    module = node.get("module")
    if module is not None and not (isinstance(module, str) and module.startswith(KNOWN_MODULE_PREFIXES)):
        raise _refusal(path, where, f"from module {str(module)[:60]!r}")
    registered = node.get("registered_name")
    if registered is not None and registered not in (class_name, f"{CUSTOM_PACKAGE}>{class_name}"):
        raise _refusal(path, where, f"registered as {str(registered)[:60]!r}")
    activation = node.get("activation")
    if isinstance(activation, str) and activation not in KNOWN_ACTIVATIONS:
        raise _refusal(path, where, f"an activation {activation[:60]!r}")
    if isinstance(node.get("function"), (str, list, dict)) and class_name != "function":
        raise _refusal(path, where, "a serialized function")


def check_model_config(path, config=None):
    """Raises ModelError unless every object in the model config of `path` is a known, code-free one."""
    config = read_model_config(path) if config is None else config
    pending = [(config, "the model")]
    while pending:
        node, where = pending.pop()
        if isinstance(node, dict):
            inner = node.get("config")
            name = node.get("name") or (inner.get("name") if isinstance(inner, dict) else None)
            here = f"layer {str(name)[:60]!r}" if isinstance(name, str) else where
            _check_object(path, node, here)
            pending.extend((value, here) for value in node.values())
        elif isinstance(node, list):
            pending.extend((value, where) for value in node)
    return config
