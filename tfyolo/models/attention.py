"""YOLO11's attention (Ultralytics' `Attention`, `PSABlock`, `C2PSA`) in plain Keras layers.

Ultralytics computes one 1x1 `qkv` convolution and views its channels as (heads, 2 * key_dim + head_dim, tokens):
the channels are interleaved per head, [q k v] of head 0, then of head 1. Slicing channels would take ops tfmot
cannot wrap, so each head's q, k and v are their own 1x1 convolutions (the same parameters: a 1x1 conv's output
channels are independent; the importer deals the `qkv` channels out to them). A head then runs

    scores = Dot(q, k)            (tokens x tokens; the key_dim^-0.5 scale sits in q's BatchNorm)
    attention = Softmax(scores)   over the keys
    out = Dot(attention, v)       (tokens x head_dim)

and the heads' outputs, side by side, plus a 3x3 depthwise convolution of v (the positional encoding `pe`), go
through the 1x1 projection. Dot lowers to TFLite's BATCH_MATMUL, Softmax to SOFTMAX; both quantize to int8 (see
`tfyolo.qat.quantize_configs` for Dot in QAT).
"""

from tfyolo.compat import keras
from tfyolo.models.blocks import conv_bn_act, split_conv

layers = keras.layers


def attention(inputs, heads, name, attention_ratio=0.5):
    """Multi-head self-attention over the feature map's cells; returns a map of the input's shape.

    Args:
        inputs: (batch, H, W, channels) Keras tensor.
        heads: int. Attention heads; channels must divide by it.
        name: str. Prefix of every layer.
        attention_ratio: float. key_dim / head_dim (Ultralytics: 0.5).
    """
    height, width, channels = (int(v) for v in inputs.shape[1:])
    head_dim = channels // heads
    key_dim = int(head_dim * attention_ratio)
    tokens = height * width
    scale = key_dim**-0.5
    values, outputs = [], []
    for head in range(heads):
        prefix = f"{name}_h{head}"
        # q * scale, folded into q's BatchNorm (gamma and beta times `scale`): one multiply fewer, exactly the same.
        query = conv_bn_act(inputs, key_dim, 1, 1, None, f"{prefix}_q", batch_norm_scale=scale)
        key = conv_bn_act(inputs, key_dim, 1, 1, None, f"{prefix}_k")
        value = conv_bn_act(inputs, head_dim, 1, 1, None, f"{prefix}_v")
        query = layers.Reshape((tokens, key_dim), name=f"{prefix}_q_tokens")(query)
        key = layers.Reshape((tokens, key_dim), name=f"{prefix}_k_tokens")(key)
        value_tokens = layers.Reshape((tokens, head_dim), name=f"{prefix}_v_tokens")(value)
        scores = layers.Dot(axes=2, name=f"{prefix}_scores")([query, key])
        weights = layers.Softmax(axis=-1, name=f"{prefix}_softmax")(scores)
        attended = layers.Dot(axes=(2, 1), name=f"{prefix}_attend")([weights, value_tokens])
        outputs.append(layers.Reshape((height, width, head_dim), name=f"{prefix}_out")(attended))
        values.append(value)
    if heads > 1:
        attended = layers.Concatenate(axis=-1, name=f"{name}_heads")(outputs)
        value = layers.Concatenate(axis=-1, name=f"{name}_values")(values)
    else:
        attended, value = outputs[0], values[0]
    position = conv_bn_act(value, channels, 3, 1, None, f"{name}_pe", depthwise=True)
    x = layers.Add(name=f"{name}_add_pe")([attended, position])
    return conv_bn_act(x, channels, 1, 1, None, f"{name}_proj")


def psa_block(inputs, heads, activation, name):
    """Ultralytics' PSABlock: x + attention(x), then x + ffn(x), ffn = 1x1 conv to 2c (activation), 1x1 back (none)."""
    channels = int(inputs.shape[-1])
    x = layers.Add(name=f"{name}_attn_add")([inputs, attention(inputs, heads, f"{name}_attn")])
    y = conv_bn_act(x, 2 * channels, 1, 1, activation, f"{name}_ffn1")
    y = conv_bn_act(y, channels, 1, 1, None, f"{name}_ffn2")
    return layers.Add(name=f"{name}_ffn_add")([x, y])


def c2psa(inputs, filters, repeats, activation, name):
    """Ultralytics' C2PSA: cv1 split in two (a, b), PSABlocks on b, cv2 over [a, b]; hidden = filters / 2 and one
    head per 64 hidden channels."""
    hidden = int(filters * 0.5)
    first, second = split_conv(inputs, hidden, activation, name)
    for index in range(repeats):
        second = psa_block(second, max(hidden // 64, 1), activation, f"{name}_m{index}")
    x = layers.Concatenate(axis=-1, name=f"{name}_concat")([first, second])
    return conv_bn_act(x, filters, 1, 1, activation, f"{name}_cv2")
