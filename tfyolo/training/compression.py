"""Weight clustering and magnitude pruning (tfmot) as a fine-tuning stage of a trained detector.

The trained float model is wrapped layer by layer (every trainable Conv2D; depthwise convolutions are excluded,
though YOLOv8 has none), fine-tuned with the same loss and loop as training, and saved stripped: a plain float
model whose kernels hold `clusters` shared values per layer, or are `sparsity` zeros. A pruned model then takes
sparsity-preserving QAT (`qat_preserve="prune"`, tfmot's scheme), so its int8 kernels keep the same zeros.
A clustered model is quantized after training (PTQ): per-channel int8 maps
equal floats to equal integers, and folding BatchNorm scales each output channel as a whole, so its int8 kernels
hold at most `clusters` values per channel without a quantization-aware stage.

TFLite stores clustered or pruned weights at full size; what shrinks is the compressed file (gzip), which is what
an app bundle or an over-the-air update ships.
"""

import tensorflow_model_optimization as tfmot

from tfyolo.compat import keras

# Where PolynomialDecay reaches the final sparsity, as a fraction of the run: the rest fine-tunes at it.
PRUNE_RAMP = 0.7
# Mask updates per ramp: tfmot's default (every 100 steps) would update a short fine-tune once or never.
PRUNE_UPDATES = 20


def compressible(layer):
    return (
        isinstance(layer, keras.layers.Conv2D)
        and not isinstance(layer, keras.layers.DepthwiseConv2D)
        and layer.trainable
    )


def wrap_for_compression(model, method, clusters=16, sparsity=0.5, total_steps=1):
    """A clone of `model` (sharing its trained layers) with every compressible layer wrapped for `method`."""
    if method == "cluster":
        centroids = tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS

        def wrap(layer):
            return tfmot.clustering.keras.cluster_weights(
                layer, number_of_clusters=clusters, cluster_centroids_init=centroids
            )

    else:
        end_step = max(int(total_steps * PRUNE_RAMP), 1)
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=0.0,
            final_sparsity=sparsity,
            begin_step=0,
            end_step=end_step,
            frequency=max(end_step // PRUNE_UPDATES, 1),
        )

        def wrap(layer):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)

    scope = tfmot.clustering.keras.cluster_scope() if method == "cluster" else tfmot.sparsity.keras.prune_scope()
    with scope:
        return keras.models.clone_model(
            model, clone_function=lambda layer: wrap(layer) if compressible(layer) else layer
        )


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


def preserve_scheme(method):
    """tfmot's 8-bit scheme that keeps `method`'s structure through QAT (None: the default scheme)."""
    if method is None:
        return None
    schemes = {"prune": tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme}
    return schemes[method]()
