"""Raw detector outputs -> boxes and scores. The one decode every runner (Keras, SavedModel, TFLite) shares.

The graph ends at the raw head (distance-distribution logits and class logits): the DFL expectation, the
anchor arithmetic and the sigmoid run here, in float, so a quantized model is only ever judged on what it
computes and every path decodes with identical code.
"""

import numpy as np

from tfyolo.ops.anchors import anchor_points


def softmax(logits, axis=-1):
    shifted = logits - np.max(logits, axis=axis, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / np.sum(exponentials, axis=axis, keepdims=True)


def sigmoid(logits):
    # The tanh form never overflows, unlike 1 / (1 + exp(-x)) for large negative logits.
    return 0.5 * (1.0 + np.tanh(0.5 * logits))


def distribution_to_distances(box_distribution, reg_max):
    """(..., 4 * reg_max) logits -> (..., 4) expected (left, top, right, bottom) distances in grid units.

    Each side's logits are a distribution over the integer distances 0 .. reg_max - 1; the distance is its
    expectation (YOLOv8's DFL layer, a fixed 1x1 conv with weights 0..15). reg_max 1 (YOLO26, no DFL): the four
    values are the distances themselves.
    """
    if reg_max == 1:
        return box_distribution.astype(np.float32)
    logits = box_distribution.reshape(*box_distribution.shape[:-1], 4, reg_max)
    return softmax(logits.astype(np.float32), axis=-1) @ np.arange(reg_max, dtype=np.float32)


def decode_predictions(box_distribution, class_logits, input_size, strides=(8, 16, 32), reg_max=16):
    """Decodes a batch of raw head outputs.

    Args:
        box_distribution: float array (batch, anchors, 4 * reg_max) (reg_max 1: the distances).
        class_logits: float array (batch, anchors, num_classes).
        input_size: int. Square model input side in pixels.
    Returns:
        boxes: (batch, anchors, 4) xyxy normalized to [0, 1] of the (letterboxed) input.
        scores: (batch, anchors, num_classes) class probabilities.
    """
    points, anchor_strides = anchor_points(input_size, strides)
    expected = points.shape[0]
    if box_distribution.shape[1] != expected or box_distribution.shape[-1] != 4 * reg_max:
        raise ValueError(
            f"box_distribution has shape {box_distribution.shape}; a {input_size}px input with strides {strides} "
            f"and reg_max {reg_max} needs (batch, {expected}, {4 * reg_max})."
        )
    distances = distribution_to_distances(box_distribution, reg_max)
    top_left = points - distances[..., :2]
    bottom_right = points + distances[..., 2:]
    boxes = np.concatenate([top_left, bottom_right], axis=-1) * anchor_strides / input_size
    return boxes.astype(np.float32), sigmoid(class_logits.astype(np.float32))
