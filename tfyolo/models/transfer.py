"""Transfer learning: start a detector from another one's weights, layer by layer, wherever the shapes agree."""

from tfyolo.errors import ModelError
from tfyolo.models.families import LEGACY_FAMILY, model_family


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


def freeze(model, part, family=None):
    """Marks the layers of `part` ("backbone", as the family's layer roles say; YOLOv8 when `family` is None)
    untrainable; BatchNormalization then runs on its moving statistics. Returns their names."""
    if part != "backbone":
        raise ModelError(f"--freeze takes 'backbone', received {part!r}.")
    family = family or model_family(LEGACY_FAMILY)
    frozen = [name for name in family.layers_in(model, part) if model.get_layer(name).weights]
    for name in frozen:
        model.get_layer(name).trainable = False
    return frozen
