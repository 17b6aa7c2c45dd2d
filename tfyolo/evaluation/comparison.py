"""Float-vs-quantized comparison: per-output error statistics and detection agreement."""

import numpy as np

from tfyolo.ops.boxes import pairwise_iou


class OutputErrors:
    """Streaming max/mean absolute error and cosine similarity of one output against its reference."""

    def __init__(self):
        self.max_abs = 0.0
        self.sum_abs = 0.0
        self.count = 0
        self.dot = 0.0
        self.norm_reference = 0.0
        self.norm_model = 0.0

    def update(self, reference, values):
        reference = reference.astype(np.float64).ravel()
        values = values.astype(np.float64).ravel()
        difference = np.abs(values - reference)
        self.max_abs = max(self.max_abs, float(difference.max(initial=0.0)))
        self.sum_abs += float(difference.sum())
        self.count += difference.size
        self.dot += float(reference @ values)
        self.norm_reference += float(reference @ reference)
        self.norm_model += float(values @ values)

    def summary(self):
        cosine = self.dot / max(np.sqrt(self.norm_reference * self.norm_model), 1e-30)
        return {
            "max_abs_error": self.max_abs,
            "mean_abs_error": self.sum_abs / max(self.count, 1),
            "cosine_similarity": cosine,
        }


def detection_agreement(reference, candidate, confidence=0.25, iou_threshold=0.5):
    """Fraction of reference detections scoring >= `confidence` that the candidate reproduces: a candidate
    detection of the same class, also >= `confidence`, at IoU >= `iou_threshold` (each used once).

    reference, candidate: {image index: (boxes xyxy, scores, class_ids)}.
    """
    total = matched = 0
    for index, (ref_boxes, ref_scores, ref_classes) in reference.items():
        keep = ref_scores >= confidence
        ref_boxes, ref_classes = ref_boxes[keep], ref_classes[keep]
        total += len(ref_boxes)
        boxes, scores, classes = candidate.get(index, (np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)))
        keep = scores >= confidence
        boxes, classes = boxes[keep], classes[keep]
        if not len(ref_boxes) or not len(boxes):
            continue
        iou = pairwise_iou(ref_boxes, boxes)
        iou[ref_classes[:, None] != classes[None, :]] = 0.0
        used = np.zeros(len(boxes), bool)
        for row in range(len(ref_boxes)):
            candidates = np.where(~used & (iou[row] >= iou_threshold))[0]
            if len(candidates):
                used[candidates[np.argmax(iou[row, candidates])]] = True
                matched += 1
    return {
        "reference_detections": total,
        "matched": matched,
        "agreement": matched / total if total else None,
        "confidence": confidence,
        "iou": iou_threshold,
    }
