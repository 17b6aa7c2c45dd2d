"""The Segment head's own branches (Ultralytics' `Segment` / `Segment26` beside the `Detect` they extend): per level
a mask-coefficient branch (`cv4`), and one prototype branch (`proto`) over the features. Plain Keras layers only, so
tfmot wraps them: the learned 2x upsampling is a Conv2DTranspose (PyTorch's ConvTranspose2d k=2 s=2 with bias)."""

from tfyolo.compat import keras
from tfyolo.models.blocks import conv_bn_act
from tfyolo.models.detect_head import BRANCH_INFIX
from tfyolo.models.tasks import MASK_COEFFICIENTS, MASK_PROTOTYPES, SEMANTIC_LOGITS

layers = keras.layers

# Layer names of the prototype branch; "head_" keeps them in every family's head section.
PROTO = "head_proto"
SEMSEG = "head_semseg"


def mask_coefficient_head(features, config, head="one2many", output_name=MASK_COEFFICIENTS):
    """Ultralytics' `cv4` (or `one2one_cv4`): per level two 3x3 blocks and a biased 1x1 to `num_masks` linear
    coefficients, flattened and concatenated over the levels in anchor order: (batch, anchors, num_masks)."""
    task = config.model_task
    # Ultralytics' c4 = max(ch[0] // 4, nm): the P3 width sets every level's.
    hidden = max(int(features[0].shape[-1]) // 4, task.num_masks)
    levels = []
    for level, (feature, stride) in enumerate(zip(features, config.strides)):
        prefix = f"head{level}{BRANCH_INFIX[head]}"
        x = conv_bn_act(feature, hidden, 3, 1, config.activation, f"{prefix}_mask1")
        x = conv_bn_act(x, hidden, 3, 1, config.activation, f"{prefix}_mask2")
        x = layers.Conv2D(task.num_masks, 1, name=f"{prefix}_mask_pred")(x)
        cells = (config.input_size // stride) ** 2
        levels.append(layers.Reshape((cells, task.num_masks), name=f"{prefix}_mask_flat")(x))
    return layers.Concatenate(axis=1, name=output_name)(levels)


def fused_p3(features, activation):
    """YOLO26's Proto26 input: P4 and P5 each taken to P3's width by a 1x1 block, upsampled (nearest) to P3's grid and
    added to it, in Ultralytics' order (P3 + P4, then + P5)."""
    p3 = features[0]
    width = int(p3.shape[-1])
    fused = p3
    for index, feature in enumerate(features[1:], start=1):
        x = conv_bn_act(feature, width, 1, 1, activation, f"{PROTO}_refine{index}")
        x = layers.UpSampling2D(2**index, interpolation="nearest", name=f"{PROTO}_up_p{index + 3}")(x)
        fused = layers.Add(name=f"{PROTO}_add{index}")([fused, x])
    return fused


def prototype_branch(x, width, config):
    """Ultralytics' Proto chain: a 3x3 block, a learned 2x upsampling, a 3x3 block, a 1x1 block to `num_masks`
    prototypes at 1/4 of the input (NHWC). The last activation is the model output `mask_prototypes`."""
    activation = config.activation
    x = conv_bn_act(x, width, 3, 1, activation, f"{PROTO}_cv1")
    x = layers.Conv2DTranspose(width, 2, strides=2, padding="valid", name=f"{PROTO}_upsample")(x)
    x = conv_bn_act(x, width, 3, 1, activation, f"{PROTO}_cv2")
    return conv_bn_act(
        x, config.model_task.num_masks, 1, 1, activation, f"{PROTO}_cv3", activation_name=MASK_PROTOTYPES
    )


def semantic_branch(fused, width, config):
    """Proto26's training-only `semseg` on the fused P3: two 3x3 blocks and a biased 1x1 to per-class logits at
    stride 8. Its last layer is not named after the output: a layer named `semantic_logits` would fall in the
    backbone section, and this one has weights."""
    x = conv_bn_act(fused, width, 3, 1, config.activation, f"{SEMSEG}1")
    x = conv_bn_act(x, width, 3, 1, config.activation, f"{SEMSEG}2")
    return layers.Conv2D(config.num_classes, 1, name=f"{SEMSEG}_pred")(x)


def segment_outputs(features, config, heads, output_names, proto_fusion=False, training_form=False):
    """The Segment head's outputs beyond detection's: {output name: tensor}.

    heads: the heads the model ends in; output_names: {head: its mask-coefficient output's name}. proto_fusion:
    YOLO26's Proto26 (P3, P4 and P5 fused before the chain) rather than Proto over P3 alone. training_form: also
    Proto26's semantic branch, which only training uses."""
    scale = config.model_family.scales[config.scale]
    # parse_model scales npr as a width: make_divisible(min(npr, max_channels) * width, 8).
    width = scale.channels(config.model_task.proto_channels)
    outputs = {output_names[head]: mask_coefficient_head(features, config, head, output_names[head]) for head in heads}
    if proto_fusion:
        fused = fused_p3(features, config.activation)
        outputs[MASK_PROTOTYPES] = prototype_branch(
            conv_bn_act(fused, width, 3, 1, config.activation, f"{PROTO}_fuse"), width, config
        )
        if training_form:
            outputs[SEMANTIC_LOGITS] = semantic_branch(fused, width, config)
    else:
        outputs[MASK_PROTOTYPES] = prototype_branch(features[0], width, config)
    return outputs
