import numpy as np
import pytest

from tfyolo.data.detection_dataset import DetectionDataset, Sample
from tfyolo.evaluation.coco_metrics import coco_detections, coco_evaluate, coco_ground_truth

SIZE = (100, 200)  # height, width of every image


def dataset_with(boxes_per_image, names=("a", "b")):
    samples = [
        Sample(
            image_path=__import__("pathlib").Path(f"img{i}.png"),
            class_ids=np.asarray([c for c, _ in boxes], np.int32),
            boxes=np.asarray([b for _, b in boxes], np.float32).reshape(-1, 4) / [200, 100, 200, 100],
        )
        for i, boxes in enumerate(boxes_per_image)
    ]
    return DetectionDataset(samples, names, "hand-built")


def score(dataset, detections):
    """detections: list of (image, class, box xyxy px, score)."""
    ground_truth = coco_ground_truth(dataset, {i: SIZE for i in range(len(dataset))})
    results = []
    for image, class_id, box, confidence in detections:
        results += coco_detections(image, np.array([box], float), [confidence], [class_id])
    return coco_evaluate(ground_truth, results, dataset.names)


def test_perfect_detections_score_one():
    dataset = dataset_with([[(0, (10, 10, 50, 60)), (1, (100, 20, 180, 90))], [(0, (0, 0, 20, 20))]])
    metrics = score(
        dataset, [(0, 0, (10, 10, 50, 60), 0.9), (0, 1, (100, 20, 180, 90), 0.8), (1, 0, (0, 0, 20, 20), 0.7)]
    )
    assert metrics["map50_95"] == pytest.approx(1.0) and metrics["map50"] == pytest.approx(1.0)
    assert metrics["per_class"]["a"]["ap50_95"] == pytest.approx(1.0)
    assert metrics["precision"] == pytest.approx(1.0) and metrics["recall"] == pytest.approx(1.0)


def test_shifted_box_just_under_iou_half_is_a_miss():
    # 10x10 box shifted 3.4 px: intersection 6.6 * 10 = 66, union 100 + 100 - 66 = 134 -> IoU 0.4925 < 0.5.
    dataset = dataset_with([[(0, (10, 10, 20, 20))]])
    metrics = score(dataset, [(0, 0, (13.4, 10, 23.4, 20), 0.9)])
    assert metrics["map50"] == 0.0 and metrics["map50_95"] == 0.0
    # 3.2 px: 68 / 132 = 0.515 -> a hit at IoU 0.5 only (of the ten thresholds 0.5:0.95) -> mAP50-95 = 0.1.
    metrics = score(dataset, [(0, 0, (13.2, 10, 23.2, 20), 0.9)])
    assert metrics["map50"] == pytest.approx(1.0) and metrics["map50_95"] == pytest.approx(0.1)


def test_lower_scored_duplicate_does_not_lower_ap():
    dataset = dataset_with([[(0, (10, 10, 50, 60))]])
    metrics = score(dataset, [(0, 0, (10, 10, 50, 60), 0.9), (0, 0, (11, 10, 50, 60), 0.5)])
    assert metrics["map50_95"] == pytest.approx(1.0)


def test_confident_false_positive_on_an_empty_image_halves_ap():
    # Ranked: FP (0.9), TP (0.5) -> precision 1/2 at recall 1, interpolated over all 101 recall points -> 0.5.
    dataset = dataset_with([[(0, (10, 10, 50, 60))], []])
    metrics = score(dataset, [(1, 0, (10, 10, 50, 60), 0.9), (0, 0, (10, 10, 50, 60), 0.5)])
    assert metrics["map50"] == pytest.approx(0.5)


def test_precision_and_recall_are_class_means_at_one_confidence_as_ultralytics_reports_them():
    # Class a: one object, found at 0.9. Class b: one object; a false positive at 0.8, the hit at 0.7.
    # Per class, at any confidence <= 0.7: a has P 1, R 1 (F1 1); b has P 1/2, R 1 (F1 2/3): mean F1 5/6, the
    # highest the two can reach together (above 0.7 class b's recall falls). So P = (1 + 1/2) / 2 = 0.75, R = 1.
    # Pooled over classes instead, the best-F1 point (all three detections) would give P = 2/3.
    dataset = dataset_with([[(0, (10, 10, 50, 60)), (1, (100, 20, 180, 90))]])
    metrics = score(
        dataset, [(0, 0, (10, 10, 50, 60), 0.9), (0, 1, (20, 70, 60, 95), 0.8), (0, 1, (100, 20, 180, 90), 0.7)]
    )
    assert metrics["precision"] == pytest.approx(0.75)
    assert metrics["recall"] == pytest.approx(1.0)
    assert metrics["f1"] == pytest.approx(5 / 6)
    assert metrics["best_f1_confidence"] <= 0.7


def test_no_detections_and_classes_without_ground_truth():
    dataset = dataset_with([[(0, (10, 10, 50, 60))]])
    metrics = score(dataset, [])
    assert metrics["map50_95"] == 0.0
    assert metrics["per_class"]["b"]["ap50_95"] is None  # no ground truth: undefined, not zero


def test_coco128_ground_truth_from_yolo_labels_equals_official_json():
    from tests.conftest import shared_dataset

    root = shared_dataset("coco128")
    from_yolo = DetectionDataset.from_data_yaml(root / "data.yaml", "val")
    from_json = DetectionDataset.from_coco_json(root / "annotations/instances_train2017_first128.json", root / "images")
    by_name = {sample.image_path.name: index for index, sample in enumerate(from_yolo.samples)}
    import json

    official = json.loads((root / "annotations/instances_train2017_first128.json").read_text())
    sizes = {image["file_name"]: (image["height"], image["width"]) for image in official["images"]}
    rng = np.random.default_rng(0)
    # Detections: every non-crowd JSON box, jittered by up to 8% of its size, with random scores, plus noise.
    detections_json, detections_yolo = [], []
    for json_index, sample in enumerate(from_json.samples):
        height, width = sizes[sample.image_path.name]
        boxes = sample.boxes[~sample.crowd] * [width, height, width, height]
        jitter = rng.uniform(-0.08, 0.08, boxes.shape) * np.tile(boxes[:, 2:] - boxes[:, :2], 2)
        scores = rng.uniform(0.05, 1, len(boxes))
        classes = sample.class_ids[~sample.crowd]
        detections_json += coco_detections(json_index, boxes + jitter, scores, classes)
        detections_yolo += coco_detections(by_name[sample.image_path.name], boxes + jitter, scores, classes)
    yolo_sizes = {by_name[name]: size for name, size in sizes.items()}
    from_yolo_metrics = coco_evaluate(coco_ground_truth(from_yolo, yolo_sizes), detections_yolo, from_yolo.names)
    json_sizes = {i: sizes[s.image_path.name] for i, s in enumerate(from_json.samples)}
    no_crowd = DetectionDataset(
        [Sample(s.image_path, s.class_ids[~s.crowd], s.boxes[~s.crowd], s.crowd[~s.crowd]) for s in from_json.samples],
        from_json.names,
        "json without crowd",
    )
    from_json_metrics = coco_evaluate(coco_ground_truth(no_crowd, json_sizes), detections_json, from_json.names)
    for key in ("map50_95", "map50", "map75"):
        assert from_yolo_metrics[key] == pytest.approx(from_json_metrics[key], abs=1e-6), key
    # With the 10 crowd regions as COCO "ignore" areas the numbers move only slightly.
    with_crowd = coco_evaluate(coco_ground_truth(from_json, json_sizes), detections_json, from_json.names)
    assert abs(with_crowd["map50_95"] - from_json_metrics["map50_95"]) < 0.02
