"""Top-k selection for one-to-one heads (YOLO26's end-to-end branch), in numpy: what replaces NMS for a head trained
to predict one box per object. It stays outside the quantized graph, as NMS does.

Ultralytics' `Detect.postprocess` (8.4): the k = min(300, anchors) anchors with the best class score, then the k
best (anchor, class) pairs among those, so one anchor may give several classes; `val` then keeps the pairs scoring
above its confidence threshold (0.001). No IoU suppression at all.
"""

import numpy as np

from tfyolo.ops.nms import NMSConfig, nms_anchors, non_max_suppression


def top_k_detections(boxes, scores, config=NMSConfig()):
    """Selects one image's detections from a one-to-one head.

    Args:
        boxes: (anchors, 4) xyxy, any units.
        scores: (anchors, num_classes) probabilities.
        config: NMSConfig. `max_detections` is k, `confidence_threshold` the score a pair must exceed; the IoU and
            candidate settings play no part.
    Returns:
        (boxes (K, 4), scores (K,), class_ids (K,)) sorted by descending score, K <= max_detections.
    """
    anchor_index, kept_scores, class_ids = top_k_anchors(boxes, scores, config)
    return boxes[anchor_index], kept_scores, class_ids


def top_k_anchors(boxes, scores, config=NMSConfig()):
    """`top_k_detections`, giving the kept detections' anchor indices instead of their boxes (see `nms_anchors`)."""
    anchors, num_classes = scores.shape
    k = min(config.max_detections, anchors)
    # A stable sort on the negated scores keeps ties in anchor order, as torch.topk does on CPU for these sizes.
    best_anchors = np.argsort(-scores.max(axis=-1), kind="stable")[:k]
    pairs = scores[best_anchors].reshape(-1)
    order = np.argsort(-pairs, kind="stable")[:k]
    order = order[pairs[order] > config.confidence_threshold]
    return best_anchors[order // num_classes], pairs[order], (order % num_classes).astype(np.int64)


# How each `postprocess` kind (`tfyolo.models.model_family.POSTPROCESS`) turns decoded predictions into detections.
SELECTORS = {"nms": non_max_suppression, "topk": top_k_detections}
# The same selections giving anchor indices, for tasks whose per-anchor outputs follow the kept detections.
ANCHOR_SELECTORS = {"nms": nms_anchors, "topk": top_k_anchors}


def select_detections(postprocess):
    """The selection function (boxes, scores, config) -> (boxes, scores, class_ids) of a `postprocess` kind."""
    if postprocess not in SELECTORS:
        raise ValueError(f"postprocess must be one of {sorted(SELECTORS)}, received {postprocess!r}.")
    return SELECTORS[postprocess]


def select_anchors(postprocess):
    """The selection function (boxes, scores, config) -> (anchor_index, scores, class_ids) of a `postprocess` kind."""
    if postprocess not in ANCHOR_SELECTORS:
        raise ValueError(f"postprocess must be one of {sorted(ANCHOR_SELECTORS)}, received {postprocess!r}.")
    return ANCHOR_SELECTORS[postprocess]
