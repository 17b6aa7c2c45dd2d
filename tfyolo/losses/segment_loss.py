"""The mask term of instance segmentation training (Ultralytics' v8SegmentationLoss, per-instance masks).

Each positive anchor of the task-aligned assignment predicts its object's mask as its 32 coefficients times the
32 prototypes (logits at prototype resolution, a quarter of the input side). Its loss is the binary cross-entropy
against the assigned object's ground-truth mask, summed over the prototype pixels inside the object's box and
divided by that box's area in prototype pixels, so a small object weighs as much as a large one. The positives'
losses are averaged, then weighed by the box gain (Ultralytics multiplies its seg term by `hyp.box`, 7.5: it has
no gain of its own).
"""

from tfyolo.compat import tf


class SegmentLoss:
    """Mask loss over the positive anchors of one batch.

    Args:
        input_size: int. Square model input side in pixels (boxes are in these pixels).
        gain: float. Ultralytics' box gain, 7.5, which its segmentation loss reuses for the mask term.
    """

    def __init__(self, input_size, gain=7.5):
        self.input_size = input_size
        self.gain = gain

    def __call__(self, coefficients, prototypes, gt_masks, target_boxes, assigned, foreground):
        """Returns the gained mask loss, a scalar.

        coefficients: (B, A, C) per-anchor mask coefficients. prototypes: (B, h, w, C).
        gt_masks: (B, M, h, w) 0/1 per-instance masks at prototype resolution.
        target_boxes: (B, A, 4) xyxy input pixels, the assigned object's box. assigned: (B, A) int32 object index.
        foreground: (B, A) bool, the positive anchors.
        """
        coefficients = tf.cast(coefficients, tf.float32)
        prototypes = tf.cast(prototypes, tf.float32)
        # Only the positives are turned into masks: every anchor's (A x h x w) would not fit in memory. Each image's
        # positives are brought to the front and the batch cut to the largest count; the rest are marked invalid.
        counts = tf.reduce_sum(tf.cast(foreground, tf.int32), axis=1)
        most = tf.maximum(tf.reduce_max(counts), 1)
        order = tf.argsort(tf.cast(foreground, tf.int32), axis=1, direction="DESCENDING", stable=True)[:, :most]
        valid = tf.cast(tf.range(most)[None] < counts[:, None], tf.float32)
        picked_coefficients = tf.gather(coefficients, order, axis=1, batch_dims=1)
        picked_boxes = tf.gather(target_boxes, order, axis=1, batch_dims=1)
        picked_masks = tf.gather(gt_masks, tf.gather(assigned, order, axis=1, batch_dims=1), axis=1, batch_dims=1)

        logits = tf.einsum("bpc,bhwc->bphw", picked_coefficients, prototypes)
        pixel_loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(picked_masks, tf.float32), logits=logits)
        height, width = tf.shape(prototypes)[1], tf.shape(prototypes)[2]
        boxes = picked_boxes * tf.cast(tf.stack([width, height, width, height]), tf.float32) / self.input_size
        inside = box_pixels(boxes, height, width)
        area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
        per_positive = tf.reduce_sum(pixel_loss * inside, axis=[2, 3]) / tf.maximum(area, 1e-9)
        positives = tf.maximum(tf.reduce_sum(valid), 1.0)
        return self.gain * tf.reduce_sum(per_positive * valid) / positives


def box_pixels(boxes, height, width):
    """(B, P, h, w) 1.0 where pixel (row, column) is in its box: x1 <= column < x2 and y1 <= row < y2 (pixel
    indices against box edges, as Ultralytics' crop_mask). boxes: (B, P, 4) xyxy in prototype pixels."""
    columns = tf.cast(tf.range(width), tf.float32)[None, None, None, :]
    rows = tf.cast(tf.range(height), tf.float32)[None, None, :, None]
    x1, y1, x2, y2 = (boxes[..., i][..., None, None] for i in range(4))
    inside_x = tf.cast((columns >= x1) & (columns < x2), tf.float32)
    inside_y = tf.cast((rows >= y1) & (rows < y2), tf.float32)
    return inside_x * inside_y
