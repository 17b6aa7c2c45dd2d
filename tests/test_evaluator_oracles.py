"""The evaluator against independent oracles: ground truth sent through the real letterbox / decode / NMS /
back-to-original path must score 1.0, known shifts must score what the arithmetic says, and the COCO numbers
must equal pycocotools run directly on the official coco128 JSON."""

import json

import numpy as np
import pytest

from tfyolo.data.pipeline import evaluation_batches
from tfyolo.evaluation.evaluator import evaluate
from tfyolo.evaluation.runners import decode_tfyolo
from tfyolo.models.yolo_detector import BOX_OUTPUT, CLASS_OUTPUT
from tfyolo.ops.anchors import anchor_points

REG_MAX = 16
FAR_BELOW = -30.0  # sigmoid(-30) ~ 1e-13: below any confidence threshold


def distance_logits(distance):
    """DFL logits whose softmax expectation over the bins 0..15 is exactly `distance` (two neighbouring bins)."""
    logits = np.full(REG_MAX, -1e4, np.float32)
    low = min(int(np.floor(distance)), REG_MAX - 2)
    high_weight = distance - low
    logits[low] = np.log(max(1.0 - high_weight, 1e-30))
    logits[low + 1] = np.log(max(high_weight, 1e-30))
    return logits


def encode(boxes, classes, size, num_classes):
    """Raw tfyolo outputs that decode to `boxes` (xyxy, input pixels) of `classes`, one anchor each."""
    points, strides = anchor_points(size, (8, 16, 32))
    box_distribution = np.zeros((len(points), 4 * REG_MAX), np.float32)
    class_logits = np.full((len(points), num_classes), FAR_BELOW, np.float32)
    used = set()
    for box, class_id in zip(boxes, classes):
        centre = (box[:2] + box[2:]) / 2
        for stride in (8, 16, 32):
            level = np.where(strides[:, 0] == stride)[0]
            anchor = level[np.argmin(np.abs(points[level] * stride - centre).sum(axis=1))]
            point = points[anchor] * stride
            distances = np.r_[point - box[:2], box[2:] - point] / stride
            if anchor not in used and distances.min() >= 0 and distances.max() <= REG_MAX - 1:
                break
        else:
            raise AssertionError(f"box {box} fits no anchor")
        used.add(anchor)
        box_distribution[anchor] = np.concatenate([distance_logits(d) for d in distances])
        class_logits[anchor, class_id] = 8.0
    return box_distribution, class_logits


class GroundTruthRunner:
    """Returns each image's ground truth as raw model outputs, optionally with every box shifted sideways by
    `shift` of its width (towards the image centre): it follows the evaluator's batches to know the images."""

    layout = "tfyolo"
    reg_max = REG_MAX
    postprocess = "nms"
    description = "ground truth"

    def __init__(self, dataset, size, shift=0.0, batch_size=8):
        self.dataset, self.input_size, self.num_classes, self.shift = dataset, size, dataset.num_classes, shift
        self._batches = evaluation_batches(dataset, size, batch_size)

    def predict_raw(self, batch):
        chunk, expected, infos = next(self._batches)
        np.testing.assert_array_equal(batch, expected)
        raw = {BOX_OUTPUT: [], CLASS_OUTPUT: []}
        for index, info in zip(chunk, infos):
            sample = self.dataset.samples[index]
            original = sample.boxes * np.tile([info.original_width, info.original_height], 2)
            boxes = original * info.scale + [info.pad_x, info.pad_y, info.pad_x, info.pad_y]
            width = boxes[:, 2] - boxes[:, 0]
            towards_centre = np.where((boxes[:, 0] + boxes[:, 2]) / 2 < self.input_size / 2, 1.0, -1.0)
            boxes[:, [0, 2]] += (self.shift * width * towards_centre)[:, None]
            box_distribution, class_logits = encode(boxes, sample.class_ids, self.input_size, self.num_classes)
            raw[BOX_OUTPUT].append(box_distribution)
            raw[CLASS_OUTPUT].append(class_logits)
        return {name: np.stack(values) for name, values in raw.items()}

    def decode(self, raw):
        return decode_tfyolo(raw, self.input_size, REG_MAX)


@pytest.fixture(scope="module")
def val_set(tiny_synthetic):
    from tfyolo.data.detection_dataset import DetectionDataset

    dataset = DetectionDataset.from_data_yaml(tiny_synthetic, "train")
    assert sum(len(sample.class_ids) for sample in dataset.samples) > 10
    return dataset


def test_ground_truth_through_the_whole_path_scores_one(val_set):
    metrics = evaluate(GroundTruthRunner(val_set, 64), val_set).metrics
    assert metrics["map50_95"] == pytest.approx(1.0) and metrics["map50"] == pytest.approx(1.0)
    assert metrics["precision"] == pytest.approx(1.0) and metrics["recall"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "iou, map50_95, map75",
    [
        # A box shifted by s of its width overlaps its original by (1 - s) / (1 + s). IoU 0.72 is a hit at the
        # thresholds 0.50, 0.55, 0.60, 0.65, 0.70 (5 of 10): AP50-95 = 0.5, AP75 = 0.
        (0.72, 0.5, 0.0),
        # IoU 0.87: a hit at 0.50 ... 0.85 (8 of 10): 0.8, and at 0.75.
        (0.87, 0.8, 1.0),
        # IoU 0.45: a miss everywhere.
        (0.45, 0.0, 0.0),
    ],
)
def test_known_shifts_give_the_map_the_arithmetic_gives(val_set, iou, map50_95, map75):
    shift = (1 - iou) / (1 + iou)
    metrics = evaluate(GroundTruthRunner(val_set, 64, shift=shift), val_set).metrics
    assert metrics["map50_95"] == pytest.approx(map50_95, abs=1e-6)
    assert metrics["map75"] == pytest.approx(map75, abs=1e-6)
    assert metrics["map50"] == pytest.approx(1.0 if iou >= 0.5 else 0.0, abs=1e-6)


def test_coco_metrics_equal_pycocotools_on_the_official_coco128_json():
    """Detections built from the official JSON (jittered boxes, random scores, false positives) are scored once
    by pycocotools on the official file with its own ids, and once by tfyolo from its own dataset reading."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from tests.conftest import shared_dataset
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.evaluation.coco_metrics import coco_detections, coco_evaluate, coco_ground_truth

    root = shared_dataset("coco128")
    json_path = root / "annotations/instances_train2017_first128.json"
    official = json.loads(json_path.read_text())
    rng = np.random.default_rng(7)
    results = []
    for annotation in official["annotations"]:
        if annotation["iscrowd"]:
            continue
        x, y, w, h = annotation["bbox"]
        jitter = rng.uniform(-0.1, 0.1, 4) * [w, h, w, h]
        results.append(
            {
                "image_id": annotation["image_id"],
                "category_id": annotation["category_id"],
                "bbox": [x + jitter[0], y + jitter[1], max(w + jitter[2], 1.0), max(h + jitter[3], 1.0)],
                "score": float(rng.uniform(0.05, 1.0)),
            }
        )
    category_ids = sorted(category["id"] for category in official["categories"])
    for image in official["images"][::4]:  # confident false positives on a quarter of the images
        results.append({"image_id": image["id"], "category_id": category_ids[0], "bbox": [0, 0, 20, 20], "score": 0.95})
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO(str(json_path))
        coco_eval = COCOeval(ground_truth, ground_truth.loadRes(results), "bbox")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()

    dataset = DetectionDataset.from_coco_json(json_path, root / "images")
    index_of_file = {sample.image_path.name: index for index, sample in enumerate(dataset.samples)}
    images = {image["id"]: image for image in official["images"]}
    class_of_category = {category_id: index for index, category_id in enumerate(category_ids)}
    ours = []
    for result in results:
        x, y, w, h = result["bbox"]
        ours += coco_detections(
            index_of_file[images[result["image_id"]]["file_name"]],
            np.array([[x, y, x + w, y + h]]),
            [result["score"]],
            [class_of_category[result["category_id"]]],
        )
    sizes = {index_of_file[i["file_name"]]: (i["height"], i["width"]) for i in official["images"]}
    metrics = coco_evaluate(coco_ground_truth(dataset, sizes), ours, dataset.names)
    assert 0.2 < coco_eval.stats[0] < 0.95  # a discriminating case, not all-or-nothing
    assert metrics["map50_95"] == pytest.approx(coco_eval.stats[0], abs=1e-9)
    assert metrics["map50"] == pytest.approx(coco_eval.stats[1], abs=1e-9)
    assert metrics["map75"] == pytest.approx(coco_eval.stats[2], abs=1e-9)


def test_a_uniform_loss_is_that_loss_on_every_half_of_the_images(val_set):
    """Every box at IoU 0.72 scores AP50-95 0.5 on any set of its images, the ground truth 1.0: a difference of
    exactly -50 points on the full set and on every half of the images (`tfyolo.evaluation.image_resampling`)."""
    from tfyolo.evaluation.image_resampling import evaluation_spreads

    shift = (1 - 0.72) / (1 + 0.72)
    shifted = evaluate(GroundTruthRunner(val_set, 64, shift=shift), val_set)
    exact = evaluate(GroundTruthRunner(val_set, 64), val_set)
    spread = evaluation_spreads(val_set, {"shifted": shifted}, exact, halves=12)["shifted"]
    assert spread["difference"] == pytest.approx(-50.0, abs=1e-6)
    assert spread["standard_error"] == pytest.approx(0.0, abs=1e-6)
