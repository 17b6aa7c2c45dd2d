"""TensorFlow box arithmetic for the loss (the numpy twins for inference live in `tfyolo.ops`)."""

import math

from tfyolo.compat import tf


def complete_iou(boxes_a, boxes_b, eps=1e-7):
    """CIoU of xyxy boxes broadcast against each other (Zheng et al. 2020, as YOLOv8's `bbox_iou(CIoU=True)`).

    CIoU = IoU - center distance^2 / enclosing diagonal^2 - alpha * v, with v the aspect-ratio consistency term
    and alpha = v / (1 - IoU + v) treated as a constant (no gradient), as in the paper.
    """
    ax1, ay1, ax2, ay2 = tf.unstack(boxes_a, 4, axis=-1)
    bx1, by1, bx2, by2 = tf.unstack(boxes_b, 4, axis=-1)
    width_a, height_a = ax2 - ax1, ay2 - ay1 + eps
    width_b, height_b = bx2 - bx1, by2 - by1 + eps
    intersection = tf.maximum(tf.minimum(ax2, bx2) - tf.maximum(ax1, bx1), 0.0) * tf.maximum(
        tf.minimum(ay2, by2) - tf.maximum(ay1, by1), 0.0
    )
    union = width_a * height_a + width_b * height_b - intersection + eps
    iou = intersection / union
    enclosing_width = tf.maximum(ax2, bx2) - tf.minimum(ax1, bx1)
    enclosing_height = tf.maximum(ay2, by2) - tf.minimum(ay1, by1)
    diagonal_squared = enclosing_width**2 + enclosing_height**2 + eps
    center_distance_squared = ((bx1 + bx2 - ax1 - ax2) ** 2 + (by1 + by2 - ay1 - ay2) ** 2) / 4
    v = (4 / math.pi**2) * (tf.atan(width_b / height_b) - tf.atan(width_a / height_a)) ** 2
    alpha = tf.stop_gradient(v / (v - iou + (1 + eps)))
    return iou - (center_distance_squared / diagonal_squared + v * alpha)


def distances_to_boxes(points, distances):
    """(left, top, right, bottom) distances from `points` (x, y) -> xyxy boxes."""
    return tf.concat([points - distances[..., :2], points + distances[..., 2:]], axis=-1)


def boxes_to_distances(points, boxes, max_distance):
    """xyxy boxes -> distances from `points`, clipped just below `max_distance` so both DFL bins exist (None:
    not clipped, plain distances)."""
    distances = tf.concat([points - boxes[..., :2], boxes[..., 2:] - points], axis=-1)
    if max_distance is None:
        return distances
    return tf.clip_by_value(distances, 0.0, max_distance - 0.01)
