"""Ultralytics tensors into tfyolo's Keras layers: one filler per module kind (`FILLERS`), and a WeightFiller that
remembers every tensor it used and every layer it filled, so that an import is complete or refused.

A Conv's activation is read from the file and checked against the Keras layer's (YOLO26's SPPF has a linear cv1
where YOLO11's applies SiLU): a mismatch is refused, never loaded into a graph that computes something else.
"""

import numpy as np

from tfyolo.errors import ModelError
from tfyolo.models.blocks import BATCH_NORM_EPSILON
from tfyolo.models.detect_head import BRANCH_INFIX
from tfyolo.models.segment_head import PROTO, SEMSEG
from tfyolo.models.tasks import MASK_PROTOTYPES

IGNORED = ("num_batches_tracked",)


def keras_activation(layer):
    """The tfyolo activation name of a Keras activation layer."""
    kind = type(layer).__name__
    if kind == "HardSwish":
        return "hard_swish"
    if kind == "ReLU":
        return "relu6" if layer.max_value else "relu"
    return "silu"


class WeightFiller:
    """Assigns source tensors to Keras layers, remembering what was used and what was filled."""

    def __init__(self, model, source, heads=None):
        """heads: {head name: (its box module, its class module[, its mask-coefficient module]) in Ultralytics'
        Detect or Segment} for the heads the Keras model has (`tfyolo.models.detect_head.BRANCH_INFIX` names their
        layers); default the one-to-many head of a Detect."""
        self.model, self.source = model, source
        self.heads = heads or {"one2many": ("cv2", "cv3")}
        self.state = source.state
        self.used, self.filled = set(), set()
        self.layer_names = {layer.name for layer in model.layers}

    def take(self, name):
        self.source.tensor_shape(name)  # refuses a missing tensor in one line
        self.used.add(name)
        values = self.state[name].astype(np.float32)
        # A NaN or inf weight (or one past float32's range) turns every output it reaches into NaN: the import would
        # succeed and every score after it would be a silent 0.
        if not np.isfinite(values).all():
            raise ModelError(
                f"{self.source.path}: tensor {name} holds {int((~np.isfinite(values)).sum())} non-finite values "
                "(NaN or inf) as float32; a model with such weights computes nothing."
            )
        return values

    def conv_bn(self, source_prefix, layer_name, channels=slice(None), scale=1.0, activation_layer=None):
        """A Conv module (conv + bn + act), or `channels` of its outputs, into `{layer_name}_conv` / `_bn`.

        scale multiplies the BatchNorm's output (its gamma and beta): attention's query scale lives there.
        activation_layer: the Keras activation's name where it is not `{layer_name}_act` (a model output's)."""
        kernel = self.take(f"{source_prefix}.conv.weight")[channels]  # OIHW (depthwise: C, 1, kH, kW)
        if self.source.fused:
            # An export folded BatchNorm into the convolution (kernel and bias): the Keras BatchNormalization
            # becomes x + bias exactly (gamma 1, mean 0, variance 1 - epsilon), and QAT folds it back in.
            bias = self.take(f"{source_prefix}.conv.bias")[channels]
            ones = np.ones_like(bias)
            gamma, beta, mean, variance = ones, bias, np.zeros_like(bias), ones - BATCH_NORM_EPSILON
        else:
            gamma, beta, mean, variance = (
                self.take(f"{source_prefix}.bn.{key}")[channels]
                for key in ("weight", "bias", "running_mean", "running_var")
            )
            # PyTorch divides by sqrt(var + its epsilon), Keras by sqrt(var + 1e-3): the same number either way.
            variance = variance + self.source.batch_norm_eps.get(source_prefix, BATCH_NORM_EPSILON) - BATCH_NORM_EPSILON
        conv = self.model.get_layer(f"{layer_name}_conv")
        layout = (2, 3, 0, 1) if type(conv).__name__ == "DepthwiseConv2D" else (2, 3, 1, 0)
        self.assign(f"{layer_name}_conv", [np.transpose(kernel, layout)])
        self.assign(f"{layer_name}_bn", [gamma * scale, beta * scale, mean, variance])
        self.check_activation(source_prefix, layer_name, activation_layer)

    def check_activation(self, source_prefix, layer_name, activation_layer=None):
        if source_prefix not in self.source.activations:
            return  # an export's graph names only the convolutions it kept as such
        expected = self.source.activations[source_prefix]
        activation = activation_layer or f"{layer_name}_act"
        built = keras_activation(self.model.get_layer(activation)) if activation in self.layer_names else None
        if built != expected:
            raise ModelError(
                f"{self.source.path}: {source_prefix} applies {expected or 'no activation'}, the Keras layer "
                f"{layer_name} {built or 'none'}; refused rather than computing something else."
            )

    def conv_with_bias(self, source_prefix, layer_name):
        """A biased Conv2d (out, in, kH, kW) into a Keras Conv2D (kH, kW, in, out); the same transpose takes a
        ConvTranspose2d (in, out, kH, kW) into a Conv2DTranspose (kH, kW, out, in). Neither kernel is flipped: both
        libraries compute output[stride * i + a] += input[i] * weight[a] for a transposed convolution."""
        kernel = self.take(f"{source_prefix}.weight")
        self.assign(layer_name, [np.transpose(kernel, (2, 3, 1, 0)), self.take(f"{source_prefix}.bias")])

    def assign(self, layer_name, values):
        layer = self.model.get_layer(layer_name)
        expected = [tuple(weight.shape) for weight in layer.get_weights()]
        if [tuple(value.shape) for value in values] != expected:
            raise ModelError(
                f"{self.source.path}: {layer_name} takes weights {expected}, the file gives "
                f"{[tuple(value.shape) for value in values]}."
            )
        layer.set_weights(values)
        self.filled.add(layer_name)

    def repeats(self, prefix):
        """How many inner blocks `prefix.m.<i>` the file holds."""
        return self.repeats_of(f"{prefix}.m")

    def repeats_of(self, prefix):
        """How many numbered children `prefix.<i>` the file holds."""
        start = len(prefix) + 1
        return len({name[start:].split(".")[0] for name in self.state if name.startswith(f"{prefix}.")})

    def check_complete(self, fixed=(), left_out=()):
        """Refuses unless every Keras variable was filled and every source tensor used (`fixed`: tensors that are
        arithmetic in tfyolo, checked by the caller; `left_out`: module prefixes the caller chose not to import and
        records, a YOLO26 head the model does not end in)."""
        unfilled = [layer.name for layer in self.model.layers if layer.weights and layer.name not in self.filled]
        skipped = {k for k in self.state if k.endswith(IGNORED) or k.startswith(tuple(f"{p}." for p in left_out))}
        unused = sorted(set(self.state) - self.used - set(fixed) - skipped)
        if unfilled or unused:
            raise ModelError(
                f"{self.source.path}: incomplete import, refused: Keras layers left unfilled {unfilled[:8]}, source "
                f"tensors left unused {unused[:8]}. A partly random model would only show up later as bad "
                "predictions."
            )


# === Fillers, one per Ultralytics module kind: (filler, file prefix "model.<i>", tfyolo block name) ===


def fill_conv(filler, prefix, name):
    filler.conv_bn(prefix, name)


def _fill_split(filler, prefix, name):
    """cv1, chunked in two: output channels [0, hidden) to `{name}_cv1a`, [hidden, 2 * hidden) to `_cv1b`."""
    hidden = filler.source.tensor_shape(f"{prefix}.cv1.conv.weight")[0] // 2
    filler.conv_bn(f"{prefix}.cv1", f"{name}_cv1a", slice(0, hidden))
    filler.conv_bn(f"{prefix}.cv1", f"{name}_cv1b", slice(hidden, 2 * hidden))


def _fill_bottleneck(filler, prefix, name):
    filler.conv_bn(f"{prefix}.cv1", f"{name}_cv1")
    filler.conv_bn(f"{prefix}.cv2", f"{name}_cv2")


def fill_c2f(filler, prefix, name):
    _fill_split(filler, prefix, name)
    for index in range(filler.repeats(prefix)):
        _fill_bottleneck(filler, f"{prefix}.m.{index}", f"{name}_m{index}")
    filler.conv_bn(f"{prefix}.cv2", f"{name}_cv2")


def fill_c3k2(filler, prefix, name):
    """C3k2's inner blocks are told apart by their tensors: a C3k has a cv3, YOLO26's attention variant is a
    Sequential (Bottleneck, PSABlock) whose children are numbered."""
    _fill_split(filler, prefix, name)
    for index in range(filler.repeats(prefix)):
        inner, target = f"{prefix}.m.{index}", f"{name}_m{index}"
        if filler.source.has(f"{inner}.cv3.conv.weight"):
            for part in ("cv1", "cv2", "cv3"):
                filler.conv_bn(f"{inner}.{part}", f"{target}_{part}")
            for position in range(filler.repeats(inner)):
                _fill_bottleneck(filler, f"{inner}.m.{position}", f"{target}_m{position}")
        elif filler.source.has(f"{inner}.0.cv1.conv.weight"):
            _fill_bottleneck(filler, f"{inner}.0", f"{target}_b")
            fill_psa_block(filler, f"{inner}.1", f"{target}_psa")
        else:
            _fill_bottleneck(filler, inner, target)
    filler.conv_bn(f"{prefix}.cv2", f"{name}_cv2")


def fill_sppf(filler, prefix, name):
    filler.conv_bn(f"{prefix}.cv1", f"{name}_cv1")
    filler.conv_bn(f"{prefix}.cv2", f"{name}_cv2")


def fill_attention(filler, prefix, name):
    """Ultralytics' one `qkv` convolution, its channels interleaved per head as [q k v], dealt out to each head's q,
    k and v convolutions; q takes the key_dim^-0.5 scale in its BatchNorm (as `tfyolo.models.attention` builds it).
    """
    heads = sum(layer.name.endswith("_q_conv") and layer.name.startswith(f"{name}_h") for layer in filler.model.layers)
    key_dim = filler.model.get_layer(f"{name}_h0_q_conv").filters
    head_dim = filler.model.get_layer(f"{name}_h0_v_conv").filters
    width = 2 * key_dim + head_dim
    channels = filler.source.tensor_shape(f"{prefix}.qkv.conv.weight")[0]
    if channels != heads * width:
        raise ModelError(
            f"{filler.source.path}: {prefix}.qkv has {channels} channels; "
            f"{heads} heads of key_dim {key_dim} and head_dim {head_dim} need {heads * width}."
        )
    for head in range(heads):
        start = head * width
        parts = (("q", start, key_dim, key_dim**-0.5), ("k", start + key_dim, key_dim, 1.0))
        parts += (("v", start + 2 * key_dim, head_dim, 1.0),)
        for part, first, count, scale in parts:
            filler.conv_bn(f"{prefix}.qkv", f"{name}_h{head}_{part}", slice(first, first + count), scale)
    filler.conv_bn(f"{prefix}.pe", f"{name}_pe")
    filler.conv_bn(f"{prefix}.proj", f"{name}_proj")


def fill_psa_block(filler, prefix, name):
    fill_attention(filler, f"{prefix}.attn", f"{name}_attn")
    filler.conv_bn(f"{prefix}.ffn.0", f"{name}_ffn1")
    filler.conv_bn(f"{prefix}.ffn.1", f"{name}_ffn2")


def fill_c2psa(filler, prefix, name):
    _fill_split(filler, prefix, name)
    for index in range(filler.repeats(prefix)):
        fill_psa_block(filler, f"{prefix}.m.{index}", f"{name}_m{index}")
    filler.conv_bn(f"{prefix}.cv2", f"{name}_cv2")


def fill_detect(filler, prefix, name):
    """Per head the model has and per level: the box branch (two Convs, a biased 1x1), the class branch (two Convs,
    or YOLO11's and YOLO26's two depthwise-separable pairs), a biased 1x1. `name` is unused: the head's layers are
    named per level and branch."""
    for head, modules in filler.heads.items():
        box_module, class_module = modules[:2]
        for level in range(3):
            box, cls = f"{prefix}.{box_module}.{level}", f"{prefix}.{class_module}.{level}"
            target_prefix = f"head{level}{BRANCH_INFIX[head]}"
            filler.conv_bn(f"{box}.0", f"{target_prefix}_box1")
            filler.conv_bn(f"{box}.1", f"{target_prefix}_box2")
            filler.conv_with_bias(f"{box}.2", f"{target_prefix}_box_pred")
            for block in (0, 1):
                target = f"{target_prefix}_cls{block + 1}"
                if filler.source.has(f"{cls}.{block}.0.conv.weight"):
                    filler.conv_bn(f"{cls}.{block}.0", f"{target}_dw")
                    filler.conv_bn(f"{cls}.{block}.1", f"{target}_pw")
                else:
                    filler.conv_bn(f"{cls}.{block}", target)
            filler.conv_with_bias(f"{cls}.2", f"{target_prefix}_cls_pred")


def fill_segment(filler, prefix, name):
    """Ultralytics' Segment / Segment26: its Detect part, then per head and level the mask-coefficient branch (two
    Convs, a biased 1x1), then the one prototype branch the heads share."""
    fill_detect(filler, prefix, name)
    for head, modules in filler.heads.items():
        for level in range(3):
            source, target = f"{prefix}.{modules[2]}.{level}", f"head{level}{BRANCH_INFIX[head]}"
            filler.conv_bn(f"{source}.0", f"{target}_mask1")
            filler.conv_bn(f"{source}.1", f"{target}_mask2")
            filler.conv_with_bias(f"{source}.2", f"{target}_mask_pred")
    fill_proto(filler, f"{prefix}.proto")


def fill_proto(filler, prefix):
    """Proto (cv1, the transposed-convolution upsample, cv2, cv3), after Proto26's level fusion (feat_refine per
    coarser level, feat_fuse) where the file has it, and Proto26's semantic branch where the model takes it."""
    if filler.source.has(f"{prefix}.feat_fuse.conv.weight"):
        for index in range(filler.repeats_of(f"{prefix}.feat_refine")):
            filler.conv_bn(f"{prefix}.feat_refine.{index}", f"{PROTO}_refine{index + 1}")
        filler.conv_bn(f"{prefix}.feat_fuse", f"{PROTO}_fuse")
    filler.conv_bn(f"{prefix}.cv1", f"{PROTO}_cv1")
    filler.conv_with_bias(f"{prefix}.upsample", f"{PROTO}_upsample")
    filler.conv_bn(f"{prefix}.cv2", f"{PROTO}_cv2")
    filler.conv_bn(f"{prefix}.cv3", f"{PROTO}_cv3", activation_layer=MASK_PROTOTYPES)
    if f"{SEMSEG}_pred" in filler.layer_names:
        filler.conv_bn(f"{prefix}.semseg.0", f"{SEMSEG}1")
        filler.conv_bn(f"{prefix}.semseg.1", f"{SEMSEG}2")
        filler.conv_with_bias(f"{prefix}.semseg.2", f"{SEMSEG}_pred")


FILLERS = {
    "Conv": fill_conv,
    "C2f": fill_c2f,
    "C3k2": fill_c3k2,
    "SPPF": fill_sppf,
    "C2PSA": fill_c2psa,
    "Detect": fill_detect,
    "Segment": fill_segment,
    "Segment26": fill_segment,
}
