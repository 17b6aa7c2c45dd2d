"""Weight clustering and magnitude pruning (tfmot) as a fine-tuning stage of a trained detector.

The trained float model is wrapped layer by layer (every trainable Conv2D; depthwise convolutions are excluded:
YOLOv8 has none, and YOLO11's few hold about 0.1% of its weights), fine-tuned with the same loss and loop as
training, and saved stripped: a plain float model whose kernels hold `clusters` shared values per layer, or are
`sparsity` zeros overall. Pruning is global magnitude pruning carried out with tfmot's per-layer schedules: the
share of each layer comes from one threshold on the weights as the converter folds them (kernel times the BatchNorm
scale that follows), so a 1-class head that needs few of its 80-class-sized channels gives up more than a 16-filter
stem. Then structure-preserving QAT (tfmot's collaborative-optimization schemes, `qat_preserve`): sparsity-
preserving for a pruned model, so its int8 kernels keep the same zeros; cluster-preserving (CQAT) for a clustered
one, which keeps every weight on one of its layer's centroids (held at their clustered values, `hold_centroids`), so
its int8 kernels keep k values per channel. A clustered model also takes PTQ directly: per-channel int8 maps equal
floats to equal integers, and folding BatchNorm scales each output channel as a whole.

TFLite stores clustered or pruned weights at full size; what shrinks is the compressed file (gzip), which is what an
app bundle or an over-the-air update ships.
"""

import numpy as np
import tensorflow_model_optimization as tfmot

from tfyolo.compat import keras

# Where PolynomialDecay reaches the final sparsity, as a fraction of the run: the rest fine-tunes at it.
PRUNE_RAMP = 0.7
# Mask updates per ramp: tfmot's default (every 100 steps) would update a short fine-tune once or never.
PRUNE_UPDATES = 20
# No layer is pruned past this share, however small its weights: tfmot's schedule needs a final sparsity below 1,
# and a layer left with a handful of weights cuts the graph.
MAX_LAYER_SPARSITY = 0.9


def compressible(layer):
    return (
        isinstance(layer, keras.layers.Conv2D)
        and not isinstance(layer, keras.layers.DepthwiseConv2D)
        and layer.trainable
    )


def folded_magnitudes(model):
    """{layer name: |kernel| times the |gamma| / sqrt(variance + epsilon) of the BatchNormalization that follows it},
    for every compressible layer: the weights the converter folds, which compare across layers where raw kernels
    (each rescaled by its own BatchNorm) do not."""
    scales = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma = np.abs(layer.gamma.numpy()) if layer.scale else 1.0
            source = layer.inbound_nodes[0].inbound_layers
            scales[source.name] = gamma / np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
    return {
        layer.name: np.abs(layer.kernel.numpy()) * scales.get(layer.name, 1.0)
        for layer in model.layers
        if compressible(layer)
    }


def layer_sparsities(model, sparsity):
    """{layer name: share of its kernel to prune} such that `sparsity` of all compressible weights go, smallest folded
    magnitude first (global magnitude pruning), no layer past MAX_LAYER_SPARSITY."""
    magnitudes = {name: np.sort(values.ravel()) for name, values in folded_magnitudes(model).items()}
    total = sum(values.size for values in magnitudes.values())

    def shares(threshold):
        return {
            name: min(float(np.searchsorted(values, threshold, side="right")) / values.size, MAX_LAYER_SPARSITY)
            for name, values in magnitudes.items()
        }

    def pruned(threshold):
        return sum(share * magnitudes[name].size for name, share in shares(threshold).items())

    # The capped count is monotonic in the threshold: bisect for the one that prunes `sparsity` of the total.
    low, high = 0.0, max(values[-1] for values in magnitudes.values())
    for _ in range(64):
        middle = (low + high) / 2
        low, high = (middle, high) if pruned(middle) < sparsity * total else (low, middle)
    return shares(high)


def pruning_schedule(final_sparsity, total_steps):
    """Polynomial decay from 0 to `final_sparsity` over PRUNE_RAMP of the run, in PRUNE_UPDATES mask updates. The
    ramp is a whole number of update intervals, so that its last update lands on the final sparsity."""
    ramp = max(int(total_steps * PRUNE_RAMP), 1)
    frequency = max(ramp // PRUNE_UPDATES, 1)
    return tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=final_sparsity,
        begin_step=0,
        end_step=frequency * (ramp // frequency),
        frequency=frequency,
    )


def wrap_for_compression(model, method, clusters=16, total_steps=1, shares=None):
    """A clone of `model` (sharing its trained layers) with every compressible layer wrapped for `method`.
    shares: for "prune", {layer name: sparsity} (`layer_sparsities`, measured once for every copy of a model); a
    layer it leaves out or gives 0 stays dense."""
    if method == "cluster":
        centroids = tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS

        def wrap(layer):
            return tfmot.clustering.keras.cluster_weights(
                layer, number_of_clusters=clusters, cluster_centroids_init=centroids
            )

        wrapped = compressible
    else:

        def wrap(layer):
            schedule = pruning_schedule(shares[layer.name], total_steps)
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)

        def wrapped(layer):
            return compressible(layer) and shares.get(layer.name, 0.0) > 0.0

    scope = tfmot.clustering.keras.cluster_scope() if method == "cluster" else tfmot.sparsity.keras.prune_scope()
    with scope:
        return keras.models.clone_model(model, clone_function=lambda layer: wrap(layer) if wrapped(layer) else layer)


def _pruning_step(model):
    """tfmot's step callback, begun: it finds the pruning wrappers and starts their step count at 0 (from -1)."""
    callback = tfmot.sparsity.keras.UpdatePruningStep()
    callback.set_model(model)
    callback.on_train_begin()
    return callback


def start(model, method):
    """What a training loop does before its first step (pruning wrappers count their own steps after it)."""
    if method == "prune":
        _pruning_step(model)


def strip(model, method):
    """The plain float model with the compressed weights, ready to save, evaluate or quantize."""
    if method == "cluster":
        return tfmot.clustering.keras.strip_clustering(model)
    # Applies each layer's current mask to its kernel, as Keras' fit does at every epoch's end.
    _pruning_step(model).on_epoch_end(0)
    return tfmot.sparsity.keras.strip_pruning(model)


def one_grid_per_layer(model):
    """Gives the two outermost centroids of every clustered kernel the magnitude of the larger; returns `model`.

    Per-channel int8 scales each output channel by its largest |weight|. A channel that holds the layer's
    largest-magnitude centroid and one whose largest is the outermost centroid of the other sign map the same
    palette onto two different int8 grids: about 30 values per layer instead of 16 (measured on YOLOv8n: 89% and
    10% of the weights), which is what gzip pays for. With the extremes at one magnitude, every such channel shares
    one grid. Only the outermost centroid of one sign moves, but that moves a detector a long way (PTQ of the
    snapped YOLOv8n scored 0.08 mAP50-95 against 0.46): cluster-preserving QAT starts from it and recovers.
    """
    for layer in model.layers:
        if not compressible(layer):
            continue
        kernel = layer.kernel.numpy()
        palette = np.unique(kernel)
        if palette[0] < 0 < palette[-1]:
            top = max(-palette[0], palette[-1])
            layer.kernel.assign(np.where(kernel == palette[0], -top, np.where(kernel == palette[-1], top, kernel)))
    return model


def hold_centroids(qat_model):
    """Makes the cluster centroids of a cluster-preserving QAT model untrainable; returns how many were held.

    tfmot's CQAT gives every output channel of a convolution its own trainable copy of the layer's centroids. The
    optimizer moves each copy on its own, so a layer keeps k values per channel but not one palette across them,
    which is what gzip exploits (measured on YOLOv8n after 14 steps: 81 int8 values per layer instead of 30,
    kernels 18% larger after gzip). Held at the clustered model's values, the palette stays; QAT still moves
    weights between centroids (through the original weights it keeps), BatchNorm and the quantization ranges.
    """
    held = 0
    for layer in qat_model.layers:
        trainable = getattr(layer, "_trainable_weights", [])
        # Moved in place, by position: list.remove would compare variables by value, and assigning a new list to
        # a Keras layer re-tracks every variable in it as a trainable weight.
        for position in reversed(range(len(trainable))):
            if "cluster_centroids" in trainable[position].name:
                layer._non_trainable_weights.append(trainable.pop(position))
                held += 1
    return held


def preserve_scheme(method):
    """tfmot's 8-bit scheme that keeps `method`'s structure through QAT (None: the default scheme)."""
    if method is None:
        return None
    # The cluster scheme's preserve_sparsity (on by default) keeps the zeros of a pruned-then-clustered model apart
    # from the centroids: on a model that was only clustered it adds 0 as a value beyond the k centroids.
    schemes = {
        "prune": tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme,
        "cluster": lambda: tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False),
    }
    return schemes[method]()
