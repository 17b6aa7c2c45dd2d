"""COCO metrics through pycocotools: ground truth and detections in COCO's own format, never a hand-written AP."""

import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tfyolo.ops.boxes import convert_format


def coco_ground_truth(dataset, image_sizes):
    """COCO dict of `dataset`'s boxes in original pixels; image id = sample index, category id = class index.

    image_sizes: {sample index: (height, width)} of the images that were evaluated.
    """
    images, annotations = [], []
    for index, (height, width) in sorted(image_sizes.items()):
        sample = dataset.samples[index]
        images.append({"id": index, "width": width, "height": height, "file_name": str(sample.image_path.name)})
        pixels = sample.boxes * np.array([width, height, width, height], np.float64)
        crowd = sample.crowd if sample.crowd is not None else np.zeros(len(sample.class_ids), bool)
        for box, class_id, is_crowd in zip(convert_format(pixels, "xyxy", "xywh"), sample.class_ids, crowd):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index,
                    "category_id": int(class_id),
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": int(is_crowd),
                }
            )
    categories = [{"id": index, "name": name} for index, name in enumerate(dataset.names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_detections(image_index, boxes_xyxy, scores, class_ids):
    return [
        {
            "image_id": int(image_index),
            "category_id": int(class_id),
            "bbox": [float(v) for v in box],
            "score": float(score),
        }
        for box, score, class_id in zip(convert_format(boxes_xyxy, "xyxy", "xywh"), scores, class_ids)
    ]


def coco_evaluator(ground_truth, detections, iou_type="bbox"):
    """pycocotools' COCOeval of `detections` (COCO results, possibly none) on `ground_truth` (a COCO dict), before
    `evaluate`; call it with stdout redirected, as pycocotools prints."""
    coco_gt = COCO()
    coco_gt.dataset = ground_truth
    coco_gt.createIndex()
    if detections:
        coco_dt = coco_gt.loadRes(detections)
    else:  # loadRes refuses an empty list
        coco_dt = COCO()
        coco_dt.dataset = {
            "images": ground_truth["images"],
            "annotations": [],
            "categories": ground_truth["categories"],
        }
        coco_dt.createIndex()
    return COCOeval(coco_gt, coco_dt, iou_type)


CONFIDENCE_GRID = np.linspace(0.0, 1.0, 1000)


def _box_smooth(values, fraction=0.1):
    """Moving average over `fraction` of the points (an odd window), ends padded with the end values."""
    window = round(len(values) * fraction * 2) // 2 + 1
    padded = np.concatenate([np.full(window // 2, values[0]), values, np.full(window // 2, values[-1])])
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def _class_matches(coco_eval):
    """{category id: (scores, matched at IoU 0.5, ground-truth count)} from COCOeval's own matching (all areas,
    the largest max-detections setting), crowd regions and ignored detections left out."""
    per_class = {}
    for evaluation in coco_eval.evalImgs:
        if evaluation is None or evaluation["aRng"] != coco_eval.params.areaRng[0]:
            continue
        if evaluation["maxDet"] != coco_eval.params.maxDets[-1]:
            continue
        scores, matched, count = per_class.setdefault(evaluation["category_id"], ([], [], [0]))
        count[0] += int((~np.asarray(evaluation["gtIgnore"], bool)).sum())
        if len(evaluation["dtIds"]):
            kept = ~np.asarray(evaluation["dtIgnore"], bool)[0]
            scores.extend(np.asarray(evaluation["dtScores"])[kept])
            matched.extend((np.asarray(evaluation["dtMatches"])[0] > 0)[kept])
    return {category: (np.asarray(s), np.asarray(m, float), n[0]) for category, (s, m, n) in per_class.items()}


def _precision_recall(coco_eval):
    """Mean precision and recall over the classes that have ground truth, as Ultralytics reports them.

    Per class, precision and recall are curves over confidence (interpolated on a 1000-point grid); the one
    confidence that maximizes the class-mean F1 (smoothed) is chosen, and each class's P and R at it are
    averaged. A class with ground truth but no detection counts as P = R = 0.
    """
    curves_p, curves_r = [], []
    for scores, matched, num_gt in _class_matches(coco_eval).values():
        if not num_gt:
            continue
        if not len(scores):
            curves_p.append(np.zeros_like(CONFIDENCE_GRID))
            curves_r.append(np.zeros_like(CONFIDENCE_GRID))
            continue
        order = np.argsort(-scores, kind="stable")
        true_positive = np.cumsum(matched[order])
        false_positive = np.cumsum(1.0 - matched[order])
        # np.interp needs increasing x: confidences are negated. Above the highest score nothing is detected:
        # recall 0, precision 1.
        curves_r.append(np.interp(-CONFIDENCE_GRID, -scores[order], true_positive / num_gt, left=0.0))
        curves_p.append(
            np.interp(-CONFIDENCE_GRID, -scores[order], true_positive / (true_positive + false_positive), left=1.0)
        )
    if not curves_p:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "confidence": None}
    precision, recall = np.stack(curves_p), np.stack(curves_r)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-16)
    best = int(np.argmax(_box_smooth(f1.mean(axis=0))))
    return {
        "precision": float(precision[:, best].mean()),
        "recall": float(recall[:, best].mean()),
        "f1": float(f1[:, best].mean()),
        "confidence": float(CONFIDENCE_GRID[best]),
    }


def coco_evaluate(ground_truth, detections, names, iou_type="bbox"):
    """Returns {"map50_95", "map50", "map75", "precision", "recall", "f1", "per_class": {...}}; mAP in [0, 1].

    iou_type: pycocotools' "bbox" (detections carry `bbox`) or "segm" (they carry `segmentation` RLEs and the
    ground truth `segmentation` polygons: `tfyolo.evaluation.mask_scoring`)."""
    per_class = {name: {"ap50_95": None, "ap50": None, "instances": 0} for name in names}
    for annotation in ground_truth["annotations"]:
        if not annotation["iscrowd"]:
            per_class[names[annotation["category_id"]]]["instances"] += 1
    empty = {
        "map50_95": 0.0,
        "map50": 0.0,
        "map75": 0.0,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "best_f1_confidence": None,
        "per_class": per_class,
        "pr_curves": {},
    }
    if not detections or not ground_truth["annotations"]:
        for entry in per_class.values():
            entry.update(ap50_95=0.0 if entry["instances"] else None, ap50=0.0 if entry["instances"] else None)
        return empty
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = coco_evaluator(ground_truth, detections, iou_type)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    # precision: (IoU thresholds, recall points, classes, area ranges, max detections); -1 marks "no ground truth".
    precision = coco_eval.eval["precision"][:, :, :, 0, -1]
    pr_curves = {}
    for class_index, name in enumerate(names):
        if class_index not in coco_eval.params.catIds:
            continue
        curve = precision[:, :, coco_eval.params.catIds.index(class_index)]
        if (curve > -1).any():
            per_class[name]["ap50_95"] = float(np.mean(curve[curve > -1]))
            at50 = curve[0]
            per_class[name]["ap50"] = float(np.mean(at50[at50 > -1]))
            # Precision at COCO's 101 recall points, IoU 0.5: the class's PR curve for reports.
            pr_curves[name] = np.where(at50 > -1, at50, 0.0).tolist()
    best = _precision_recall(coco_eval)
    return {
        "map50_95": float(max(coco_eval.stats[0], 0.0)),
        "map50": float(max(coco_eval.stats[1], 0.0)),
        "map75": float(max(coco_eval.stats[2], 0.0)),
        "precision": best["precision"],
        "recall": best["recall"],
        "f1": best["f1"],
        "best_f1_confidence": best["confidence"],
        "per_class": per_class,
        "pr_curves": pr_curves,
    }
