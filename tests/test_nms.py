import numpy as np

from tfyolo.ops.nms import NMSConfig, non_max_suppression


def test_class_aware_nms():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    # Box 1 overlaps box 0 with IoU 90/110 = 0.82 > 0.7 (same class 0) -> suppressed; box 2 is the same place as box 0
    # but class 1 -> kept (class-aware); box 3 is far away.
    scores = np.zeros((4, 2), np.float32)
    scores[0, 0], scores[1, 0], scores[2, 1], scores[3, 0] = 0.9, 0.8, 0.7, 0.6
    kept_boxes, kept_scores, kept_classes = non_max_suppression(boxes, scores, NMSConfig(confidence_threshold=0.25))
    np.testing.assert_allclose(kept_scores, [0.9, 0.7, 0.6])
    np.testing.assert_array_equal(kept_classes, [0, 1, 0])
    np.testing.assert_array_equal(kept_boxes[2], [50, 50, 60, 60])


def test_confidence_filter_and_cap():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 600, (1000, 2))
    boxes = np.c_[corners, corners + 5].astype(np.float32)
    scores = rng.uniform(0, 1, (1000, 3)).astype(np.float32)
    _, kept_scores, _ = non_max_suppression(boxes, scores, NMSConfig(max_detections=300))
    assert len(kept_scores) == 300 and np.all(np.diff(kept_scores) <= 0)
    _, none, _ = non_max_suppression(boxes, scores * 0.0, NMSConfig())
    assert len(none) == 0


def test_dense_overlapping_boxes_match_opencv_batched_nms():
    """An independent greedy NMS (OpenCV's, per class) on 600 boxes packed into a small area: heavy overlap, so
    most suppression decisions hinge on IoU near the threshold."""
    import cv2

    rng = np.random.default_rng(4)
    corners = rng.uniform(0, 60, (600, 2))
    sizes = rng.uniform(15, 40, (600, 2))
    boxes = np.c_[corners, corners + sizes].astype(np.float32)
    classes = rng.integers(0, 3, 600)
    confidences = rng.uniform(0.3, 1.0, 600).astype(np.float32)
    scores = np.zeros((600, 3), np.float32)
    scores[np.arange(600), classes] = confidences
    kept_boxes, kept_scores, kept_classes = non_max_suppression(
        boxes, scores, NMSConfig(confidence_threshold=0.25, iou_threshold=0.5, max_detections=600)
    )
    xywh = [(float(x1), float(y1), float(x2 - x1), float(y2 - y1)) for x1, y1, x2, y2 in boxes]
    expected = np.asarray(cv2.dnn.NMSBoxesBatched(xywh, confidences.tolist(), classes.tolist(), 0.25, 0.5)).ravel()
    assert 20 < len(expected) < 300  # a real amount of suppression, not all or nothing
    order = np.argsort(-confidences[expected], kind="stable")
    np.testing.assert_allclose(kept_scores, confidences[expected][order])
    np.testing.assert_array_equal(kept_classes, classes[expected][order])
    np.testing.assert_allclose(kept_boxes, boxes[expected][order])
