"""Transfer learning: start a detector from another one's weights, layer by layer, wherever the shapes agree."""

from pathlib import Path

from tfyolo.errors import ModelError

# The backbone's blocks by name prefix (`--freeze backbone`): stem, the strided convolutions, the C2f stages, SPPF.
BACKBONE_PREFIXES = ("stem_", "down", "stage", "sppf_")


def load_source_detector(path, input_size=None):
    """The float detector in `path`: a tfyolo .keras, or an Ultralytics .pt / .onnx imported on the fly."""
    path = Path(path)
    if path.suffix in (".pt", ".onnx"):
        from tfyolo.importers.ultralytics_import import import_weights

        return import_weights(path, input_size)[0]
    if path.suffix == ".keras":
        from tfyolo.models.model_io import load_keras_model

        return load_keras_model(path)
    raise ModelError(f"{path}: --weights takes a .keras, an Ultralytics .pt or .onnx, received {path.suffix!r}.")


def transfer_weights(model, source):
    """Copies every layer of `source` into the same-named layer of `model` whose weight shapes agree.

    Returns {"loaded": [layer names], "kept_initial": [layers whose shapes differ or that `source` lacks, e.g. the
    class predictions when the class count changes]}."""
    by_name = {layer.name: layer for layer in source.layers}
    loaded, kept = [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        donor = by_name.get(layer.name)
        values = donor.get_weights() if donor is not None else None
        if values is not None and [v.shape for v in values] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(values)
            loaded.append(layer.name)
        else:
            kept.append(layer.name)
    if not loaded:
        raise ModelError("no layer of the --weights model fits this detector (another scale or architecture?).")
    return {"loaded": loaded, "kept_initial": kept}


def freeze(model, part):
    """Marks the layers of `part` ("backbone") untrainable; BatchNormalization then runs on its moving statistics."""
    if part != "backbone":
        raise ModelError(f"--freeze takes 'backbone', received {part!r}.")
    frozen = [layer.name for layer in model.layers if layer.name.startswith(BACKBONE_PREFIXES) and layer.weights]
    for layer in model.layers:
        if layer.name in frozen:
            layer.trainable = False
    return frozen
