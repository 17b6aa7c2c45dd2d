"""What a model file may hold before Keras is allowed to read it.

Loading a Keras model deserializes its config: a `Lambda` layer's function is Python bytecode that runs when the
model is rebuilt, a config's `module` names a module to import, and an `activation` may name any function. tf_keras'
safe mode covers Lambda in the `.keras` format only, and a legacy `.h5` file runs it as it loads. So every file is
read as plain JSON first (`config.json` of a `.keras` zip, the `model_config` attribute of an `.h5`), and refused
unless each object in it is one that tfyolo's own builders, tfmot's QAT wrappers or Keras' initializers produce.
Nothing is imported, called or built before that check passes.

The container is checked before the config is read: a `.keras` zip may hold only the entries tf_keras and tfyolo
write, and the HDF5 weights (the `.h5` file, or the zip's `model.weights.h5`) only datasets stored inside the file
itself (`tfyolo.models.hdf5_check`): HDF5 would otherwise read a server file into the weights.
"""

import json
import os
import zipfile
from pathlib import Path

from tfyolo.config import MAX_INPUT_SIZE
from tfyolo.errors import ModelError
from tfyolo.metadata import read_h5_text_attribute
from tfyolo.models.hdf5_check import FileWindow, check_hdf5_weights

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
        "Conv2DTranspose",
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
        # A segmenter's learned 2x upsampling (Conv2DTranspose) under QAT.
        "Default8BitConvTransposeQuantizeConfig",
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


# The entries of a `.keras` zip, as tf_keras and tfyolo write them. tf_keras unpacks every entry of a zip of more than
# three into a temporary folder, so an entry nobody wrote is refused too, and the JSON ones are bounded.
KERAS_ENTRIES = ("config.json", "model.weights.h5", "metadata.json", "tfyolo_metadata.json")
WEIGHTS_ENTRY = "model.weights.h5"
MAX_JSON_BYTES = 64 << 20
# Deflate is inflated a bounded chunk at a time by zipfile; bzip2 and lzma are not (a 2 KB entry can take 5 GB).
JSON_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def read_model_config(path):
    """The model config of a `.keras` or `.h5` file as parsed JSON, read without Keras, once its container passed
    `check_keras_archive` / `check_hdf5_weights`."""
    path = Path(path)
    try:
        if path.suffix == ".h5":
            import h5py

            check_hdf5_weights(path, path.stat().st_size, path)
            with h5py.File(path, "r") as stream:
                raw = read_h5_text_attribute(stream, "model_config", MAX_JSON_BYTES, path)
        else:
            with open(path, "rb") as handle, zipfile.ZipFile(handle) as archive:
                check_keras_archive(path, archive, handle)
                raw = archive.read("config.json")
    except (OSError, zipfile.BadZipFile, KeyError) as error:
        raise ModelError(f"{path}: not a Keras model file ({type(error).__name__}: {error}).")
    if raw is None:
        raise ModelError(f"{path}: holds no model config (weights only?); tfyolo loads whole Keras models.")
    try:
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise ModelError(f"{path}: its model config is not valid JSON ({type(error).__name__}: {error}).")


def _entry_refusal(path, name, what):
    return ModelError(
        f"{path}: refused before loading: zip entry {name[:80]!r} {what}; a .keras file holds "
        f"{', '.join(KERAS_ENTRIES)} once each, {WEIGHTS_ENTRY} stored uncompressed (as tf_keras writes it), "
        "the JSON ones stored or deflated."
    )


def check_keras_archive(path, archive, handle):
    """Raises ModelError unless the open `.keras` zip `archive` (read from the binary file `handle`) holds only the
    entries tf_keras and tfyolo write, bounded, and its weights pass `check_hdf5_weights`."""
    names = archive.namelist()
    for info in archive.infolist():
        name = info.filename
        if name not in KERAS_ENTRIES:
            raise _entry_refusal(path, name, "is not one tf_keras or tfyolo writes")
        if names.count(name) > 1:
            raise _entry_refusal(path, name, f"appears {names.count(name)} times")
        if name == WEIGHTS_ENTRY and info.compress_type != zipfile.ZIP_STORED:
            raise _entry_refusal(path, name, f"is compressed (method {info.compress_type})")
        if name != WEIGHTS_ENTRY and info.compress_type not in JSON_COMPRESSIONS:
            raise _entry_refusal(path, name, f"is compressed with method {info.compress_type}")
        if name != WEIGHTS_ENTRY and info.file_size > MAX_JSON_BYTES:
            raise _entry_refusal(path, name, f"declares {info.file_size:,} bytes, more than {MAX_JSON_BYTES:,}")
    if WEIGHTS_ENTRY in names:
        info = archive.getinfo(WEIGHTS_ENTRY)
        start = _member_start(path, info, handle)
        check_hdf5_weights(FileWindow(handle, start, info.file_size), info.file_size, f"{path}: {WEIGHTS_ENTRY}")


def _member_start(path, info, handle):
    """Where the bytes of the stored zip member `info` begin in `handle`, once they are shown to lie inside it."""
    handle.seek(info.header_offset)
    header = handle.read(30)
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise _entry_refusal(path, info.filename, "has no local header where the zip's directory says")
    start = info.header_offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
    if info.compress_size != info.file_size or start + info.file_size > os.fstat(handle.fileno()).st_size:
        raise _entry_refusal(path, info.filename, f"declares {info.file_size:,} bytes that the zip does not hold")
    return start


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
    if class_name == "InputLayer":
        _check_input_shape(path, node.get("config"), where)
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


def _check_input_shape(path, config, where):
    """An input layer's sides are at most MAX_INPUT_SIZE, as --imgsz's: what a model costs to run grows with side^2,
    and a file may not ask for more than a user may type."""
    config = config if isinstance(config, dict) else {}
    shape = config.get("batch_input_shape") or config.get("batch_shape") or []
    if not isinstance(shape, list) or any(
        dim is not None and not (type(dim) is int and 0 < dim <= MAX_INPUT_SIZE) for dim in shape[1:]
    ):
        raise ModelError(
            f"{path}: refused before loading: {where} has input shape {str(shape)[:80]}; expected sides from 1 to "
            f"{MAX_INPUT_SIZE}, as --imgsz."
        )


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
