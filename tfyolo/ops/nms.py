"""Confidence filter + class-aware non-maximum suppression, in numpy (no TensorFlow in the evaluation path).

Defaults follow Ultralytics' `val`: confidence 0.001, IoU 0.7, 300 detections, every class above the
threshold may claim a box (multi-label), at most 30000 candidates enter NMS.
"""

import dataclasses

import numpy as np

from tfyolo.ops.boxes import box_area


@dataclasses.dataclass(frozen=True)
class NMSConfig:
    confidence_threshold: float = 0.001
    iou_threshold: float = 0.7
    max_detections: int = 300
    max_candidates: int = 30000
    multi_label: bool = True


def greedy_nms(boxes, scores, iou_threshold, max_keep=None):
    """Indices kept by greedy NMS over xyxy `boxes`, highest score first, at most `max_keep` of them.

    Stopping at `max_keep` bounds the loop even for an untrained model with thousands of candidates.
    """
    order = np.argsort(-scores, kind="stable")
    areas = box_area(boxes)
    keep = []
    while order.size and (max_keep is None or len(keep) < max_keep):
        best = order[0]
        keep.append(best)
        rest = order[1:]
        top_left = np.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
        iou = intersection / np.maximum(areas[best] + areas[rest] - intersection, 1e-12)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def non_max_suppression(boxes, scores, config=NMSConfig()):
    """Filters one image's decoded predictions.

    Args:
        boxes: (anchors, 4) xyxy, any units.
        scores: (anchors, num_classes) probabilities.
    Returns:
        (boxes (K, 4), scores (K,), class_ids (K,)) sorted by descending score, K <= max_detections.
    """
    anchor_index, kept_scores, class_ids = nms_anchors(boxes, scores, config)
    return boxes[anchor_index], kept_scores, class_ids


def nms_anchors(boxes, scores, config=NMSConfig()):
    """`non_max_suppression`, giving the kept detections' anchor indices instead of their boxes: what a task's
    per-anchor outputs (mask coefficients) are taken by. Returns (anchor_index (K,), scores (K,), class_ids (K,))."""
    if config.multi_label:
        anchor_index, class_ids = np.nonzero(scores > config.confidence_threshold)
        candidate_scores = scores[anchor_index, class_ids]
    else:
        class_ids = np.argmax(scores, axis=-1)
        candidate_scores = scores[np.arange(len(scores)), class_ids]
        anchor_index = np.nonzero(candidate_scores > config.confidence_threshold)[0]
        class_ids, candidate_scores = class_ids[anchor_index], candidate_scores[anchor_index]
    if candidate_scores.size > config.max_candidates:
        top = np.argsort(-candidate_scores, kind="stable")[: config.max_candidates]
        anchor_index, class_ids, candidate_scores = anchor_index[top], class_ids[top], candidate_scores[top]
    candidate_boxes = boxes[anchor_index].astype(np.float64)
    # Shifting each class's boxes by a distinct offset far beyond any box makes one NMS pass class-aware.
    offset = class_ids[:, None] * (np.abs(candidate_boxes).max(initial=1.0) * 2 + 1)
    keep = greedy_nms(candidate_boxes + offset, candidate_scores, config.iou_threshold, config.max_detections)
    return anchor_index[keep], candidate_scores[keep], class_ids[keep]
