from tfyolo.compat import tf
from tfyolo.losses.box_ops import complete_iou


class TaskAlignedAssigner:
    """Task-aligned label assignment (TOOD, Feng et al. 2021), as YOLOv8's `TaskAlignedAssigner`.

    For every ground-truth box, the anchors whose centers lie inside it are ranked by the alignment metric
    `score ** alpha * iou ** beta` (score: the predicted probability of the box's class; iou: CIoU of the
    predicted box with it); the top `top_k` become its positives. An anchor claimed by several boxes keeps the
    one it overlaps most. Targets are soft: each positive's class target is its alignment metric rescaled so the
    best anchor of each box gets that box's best IoU.

    Args:
        num_classes: int.
        top_k: int. Positives per ground-truth box (YOLOv8: 10).
        alpha: float. Exponent of the class score (YOLOv8: 0.5).
        beta: float. Exponent of the IoU (YOLOv8: 6.0).
        top_k2: int or None. After conflicts are resolved, keep only each box's `top_k2` best positives (YOLO26's
            one-to-one head: 7 candidates narrowed to 1, so every object has one anchor to predict it).
        min_side: float or None. Small-target-aware assignment (STAL, YOLO26): for choosing candidates only, a box
            side shorter than this (pixels) is widened to it about the box's centre, so a tiny object still has
            anchor centres inside it; its targets stay the real box.
    """

    def __init__(self, num_classes, top_k=10, alpha=0.5, beta=6.0, eps=1e-9, top_k2=None, min_side=None):
        self.num_classes = num_classes
        self.top_k = top_k
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
        self.top_k2 = top_k2
        self.min_side = min_side

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "top_k": self.top_k,
            "alpha": self.alpha,
            "beta": self.beta,
            "top_k2": self.top_k2,
            "min_side": self.min_side,
        }

    def __call__(
        self,
        pred_scores,
        pred_boxes,
        anchor_points,
        gt_classes,
        gt_boxes,
        gt_mask,
        with_indices=False,
        **overlap_inputs,
    ):
        """Assigns targets; every input and output is in pixels of the model input.

        Args:
            pred_scores: (B, A, C) probabilities. pred_boxes: (B, A, 4) xyxy. anchor_points: (A, 2) x, y.
            gt_classes: (B, M) int32. gt_boxes: (B, M, 4) xyxy. gt_mask: (B, M) 1.0 for real boxes, 0.0 padding.
            overlap_inputs: what a subclass's `pair_overlaps` reads beyond the boxes (a mask-aware assigner's masks).
        Returns:
            target_boxes (B, A, 4) xyxy, target_scores (B, A, C), foreground (B, A) bool; with_indices, also
            assigned (B, A) int32: the index of each anchor's ground-truth box (what a mask loss needs).
        """
        pred_scores = tf.stop_gradient(pred_scores)
        pred_boxes = tf.stop_gradient(pred_boxes)
        num_anchors = tf.shape(anchor_points)[0]
        num_gt = tf.shape(gt_boxes)[1]

        # 1. Candidates: anchors whose center is strictly inside a real ground-truth box (STAL: widened to
        # min_side).  (B, M, A)
        points = anchor_points[None, None]
        candidate_boxes = gt_boxes if self.min_side is None else widen_to(gt_boxes, self.min_side)
        inside = tf.concat(
            [points - candidate_boxes[:, :, None, :2], candidate_boxes[:, :, None, 2:] - points], axis=-1
        )
        candidate = tf.cast(tf.reduce_min(inside, axis=-1) > self.eps, tf.float32) * gt_mask[:, :, None]

        # 2. Alignment metric of every (box, anchor) pair.
        class_scores = tf.transpose(tf.gather(pred_scores, gt_classes, axis=2, batch_dims=1), [0, 2, 1])
        overlaps = self.pair_overlaps(gt_boxes, pred_boxes, candidate, class_scores, **overlap_inputs)
        metric = class_scores**self.alpha * overlaps**self.beta * candidate

        # 3. The top_k candidates by metric per box. Anchors with a zero metric carry zero targets anyway.
        k = tf.minimum(self.top_k, num_anchors)
        kth_best = tf.math.top_k(metric, k=k).values[..., -1:]
        positive = tf.cast((metric >= kth_best) & (metric > 0), tf.float32) * candidate

        # 4. An anchor claimed by several boxes keeps the one it overlaps most.
        claims = tf.reduce_sum(positive, axis=1, keepdims=True)
        best_box = tf.one_hot(tf.argmax(overlaps, axis=1), num_gt, axis=1)
        positive = tf.where(claims > 1, best_box, positive)
        if self.top_k2 is not None and self.top_k2 < self.top_k:
            # 4b. One-to-one: each box keeps its top_k2 remaining positives by metric (Ultralytics' topk2).
            best = tf.math.top_k(metric * positive, k=tf.minimum(self.top_k2, num_anchors)).indices
            positive = positive * tf.reduce_max(tf.one_hot(best, num_anchors), axis=-2)
        foreground = tf.reduce_sum(positive, axis=1) > 0
        assigned = tf.argmax(positive, axis=1, output_type=tf.int32)

        # 5. Targets from the assigned boxes, class targets scaled by the normalized metric.
        target_boxes = tf.gather(gt_boxes, assigned, axis=1, batch_dims=1)
        target_classes = tf.gather(gt_classes, assigned, axis=1, batch_dims=1)
        target_scores = tf.one_hot(target_classes, self.num_classes) * tf.cast(foreground, tf.float32)[..., None]
        metric = metric * positive
        best_metric = tf.reduce_max(metric, axis=-1, keepdims=True)
        best_overlap = tf.reduce_max(overlaps * positive, axis=-1, keepdims=True)
        normalized = tf.reduce_max(metric * best_overlap / (best_metric + self.eps), axis=1)
        if with_indices:
            return target_boxes, target_scores * normalized[..., None], foreground, assigned
        return target_boxes, target_scores * normalized[..., None], foreground

    def pair_overlaps(self, gt_boxes, pred_boxes, candidate, class_scores):
        """(B, M, A) how well each candidate anchor's prediction overlaps each box: the CIoU, floored at 0, and 0 off
        the candidates. class_scores (B, M, A) are for subclasses whose overlap depends on the alignment metric."""
        del class_scores
        return tf.maximum(complete_iou(gt_boxes[:, :, None, :], pred_boxes[:, None, :, :]), 0.0) * candidate


def widen_to(boxes, min_side):
    """xyxy `boxes` with every side shorter than `min_side` widened to it about the box's centre."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2.0
    half = tf.maximum(boxes[..., 2:] - boxes[..., :2], min_side) / 2.0
    return tf.concat([centre - half, centre + half], axis=-1)
