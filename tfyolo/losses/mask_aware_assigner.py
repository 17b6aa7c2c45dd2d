"""YOLO26-seg's task-aligned assignment, which also scores each predicted mask (Ultralytics' SegTaskAlignedAssigner).

The overlap of a (box, anchor) pair is the mean of the box CIoU and the IoU of the anchor's predicted mask with the
box's ground-truth mask, so the positives, the conflicts between boxes and the soft class targets all favour
anchors whose masks are right, and the class score a YOLO26-seg learns ranks its detections by mask quality too.
Decoding a mask for every pair would not fit in memory, so only each box's `3 x top_k` best pairs by the box
alignment metric get a mask IoU; the others count it as 0 (their overlap halves, which keeps them out of the top k).
"""

from tfyolo.compat import tf
from tfyolo.losses.segment_loss import box_pixels
from tfyolo.losses.task_aligned_assigner import TaskAlignedAssigner


class MaskAwareAssigner(TaskAlignedAssigner):
    """`TaskAlignedAssigner` whose overlap is (box CIoU + predicted-mask IoU) / 2; called with the head's mask
    coefficients, the prototypes and the ground-truth masks as keyword arguments.

    Args:
        input_size: int. Square model input side in pixels (the boxes' unit; the prototypes are a fraction of it).
        Others: as `TaskAlignedAssigner`.
    """

    def __init__(self, num_classes, input_size, **kwargs):
        super().__init__(num_classes, **kwargs)
        self.input_size = input_size

    def get_config(self):
        return {**super().get_config(), "input_size": self.input_size}

    def pair_overlaps(self, gt_boxes, pred_boxes, candidate, class_scores, coefficients, prototypes, gt_masks):
        """coefficients: (B, A, C) the head's mask coefficients; prototypes: (B, h, w, C); gt_masks: (B, M, h, w)
        0/1 per box, in the order of gt_boxes."""
        box_overlaps = super().pair_overlaps(gt_boxes, pred_boxes, candidate, class_scores)
        num_anchors = tf.shape(pred_boxes)[1]
        # Each box's best pairs by the box alignment metric; eps keeps a zero-metric candidate selectable.
        box_metric = (class_scores**self.alpha * box_overlaps**self.beta + self.eps) * candidate
        best = tf.math.top_k(box_metric, k=tf.minimum(3 * self.top_k, num_anchors))
        selected = tf.cast(best.values > 0, tf.float32)  # (B, M, K): only candidates get a mask IoU

        batch, boxes, picks = tf.shape(best.indices)[0], tf.shape(best.indices)[1], tf.shape(best.indices)[2]
        flat = tf.reshape(best.indices, [batch, -1])  # (B, M * K) anchor indices
        picked_coefficients = tf.gather(tf.stop_gradient(tf.cast(coefficients, tf.float32)), flat, batch_dims=1)
        prototypes = tf.stop_gradient(tf.cast(prototypes, tf.float32))
        scale = tf.cast(tf.shape(prototypes)[1], tf.float32) / self.input_size
        picked_boxes = tf.gather(pred_boxes, flat, batch_dims=1) * scale
        truth = tf.cast(gt_masks > 0.5, tf.float32)
        # One image at a time: an image's (M x K) masks at prototype resolution, not the batch's, are in memory.
        mask_iou = tf.map_fn(
            lambda image: picked_mask_ious(*image, picks),
            (picked_coefficients, prototypes, picked_boxes, truth),
            fn_output_signature=tf.float32,
            parallel_iterations=1,
        )
        mask_iou = tf.reshape(mask_iou, [batch, boxes, picks]) * selected

        # Back to (B, M, A): the top-k indices of one box are distinct, so each pair is written once.
        b, m = tf.meshgrid(tf.range(batch), tf.range(boxes), indexing="ij")
        b = tf.broadcast_to(b[..., None], tf.shape(best.indices))
        m = tf.broadcast_to(m[..., None], tf.shape(best.indices))
        where = tf.stack([b, m, best.indices], axis=-1)
        dense = tf.scatter_nd(where, mask_iou, tf.shape(box_overlaps))
        return (box_overlaps + dense) / 2.0 * candidate


def picked_mask_ious(coefficients, prototypes, boxes, truth, picks):
    """(M * K,) IoU of each picked anchor's predicted mask with its object's mask, for one image: predicted as
    validation makes them, the sign of coefficients x prototypes cropped to the predicted box.

    coefficients: (M * K, C); prototypes: (h, w, C); boxes: (M * K, 4) xyxy in prototype pixels; truth: (M, h, w)
    0/1, object m's picks being rows m * K ... m * K + K - 1."""
    height, width = tf.shape(prototypes)[0], tf.shape(prototypes)[1]
    logits = tf.einsum("pc,hwc->phw", coefficients, prototypes)
    predicted = tf.cast(logits > 0, tf.float32) * box_pixels(boxes[None], height, width)[0]
    predicted = tf.reshape(predicted, [-1, picks, height, width])
    intersection = tf.reduce_sum(predicted * truth[:, None], axis=[2, 3])
    union = tf.reduce_sum(truth, axis=[1, 2])[:, None] + tf.reduce_sum(predicted, axis=[2, 3]) - intersection
    return tf.reshape(intersection / tf.maximum(union, 1.0), [-1])
