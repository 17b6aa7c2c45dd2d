"""tfyolo-eval's mask mAP against Ultralytics' val convention, on the same detections: each model's detections (tfyolo's
letterbox, decode and NMS) are scored twice by pycocotools "segm", once as tfyolo-eval does (masks sampled at the
original image's pixels, polygon ground truth rasterized there) and once as Ultralytics 8.4's val does (its source
read, its convention applied to these detections): masks at the prototypes' 80 x 80 (logits cut to the box / 4,
> 0) against ground truth filled at the input scale (polygon in input pixels truncated to int32, cv2.fillPoly at
320 x 320, INTER_LINEAR resize to 80 x 80, a pixel two instances share given to the smaller one), in the padded
80 x 80 input frame. The gap between the two is the mask convention alone (docs/evaluation.md).

Usage: python -m benchmarks.study_seg_mask_convention DATA.yaml MODEL [MODEL ...]
"""

import sys

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from tfyolo.data.detection_dataset import DetectionDataset
from tfyolo.data.pipeline import evaluation_batches
from tfyolo.evaluation.coco_metrics import coco_evaluate
from tfyolo.evaluation.evaluator import evaluate
from tfyolo.jobs.model_runner import open_runner
from tfyolo.models.tasks import MASK_COEFFICIENTS, MASK_PROTOTYPES
from tfyolo.ops.masks import box_span
from tfyolo.ops.nms import NMSConfig
from tfyolo.ops.topk import select_anchors


def rle(mask):
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def input_frame_truth(sample, info, size, annotations, image_id):
    """Ultralytics' val ground truth of one image: (side, side) masks, overlapping pixels to the smaller instance."""
    side = size // 4
    scale = np.array([info.original_width, info.original_height]) * info.scale
    polygons = [polygon * scale + [info.pad_x, info.pad_y] for polygon in sample.polygons]
    filled = [cv2.fillPoly(np.zeros((size, size), np.uint8), [p.astype(np.int32)], 1) for p in polygons]
    small = [cv2.resize(mask, (side, side)) for mask in filled]
    owner = np.zeros((side, side), np.int32)
    for k in np.argsort([-int(mask.sum()) for mask in small], kind="stable"):
        owner[small[k] > 0] = k + 1
    for k, class_id in enumerate(sample.class_ids):
        mask = owner == k + 1
        annotations.append(
            {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": int(class_id),
                "iscrowd": 0,
                "segmentation": rle(mask),
                "area": float(mask.sum()),
                "bbox": [0.0, 0.0, 1.0, 1.0],
            }
        )


def proto_frame_masks(boxes, scores, classes, coefficients, prototypes, image_id):
    """Ultralytics' val masks of one image's kept detections: logits at the prototypes' size, cut to box / 4."""
    side = prototypes.shape[0]
    logits = (coefficients @ prototypes.reshape(-1, prototypes.shape[-1]).T).reshape(-1, side, side)
    results = []
    for logit, box, score, class_id in zip(logits, boxes, scores, classes):
        mask = np.zeros((side, side), bool)
        (top, bottom), (left, right) = box_span(box[1], box[3], side), box_span(box[0], box[2], side)
        mask[top:bottom, left:right] = logit[top:bottom, left:right] > 0
        results.append({"image_id": image_id, "category_id": int(class_id), "segmentation": rle(mask), "score": score})
    return results


def ultralytics_style_masks(model, dataset):
    runner = open_runner(model)
    size, select = runner.input_size, select_anchors(runner.postprocess)
    images, annotations, results = [], [], []
    for chunk, batch, infos in evaluation_batches(dataset, size, 8, cache=True):
        raw = runner.predict_raw(batch)
        boxes, scores = runner.decode(raw)
        task = runner.task_outputs(raw)
        for position, (index, info) in enumerate(zip(chunk, infos)):
            images.append({"id": index, "width": size // 4, "height": size // 4})
            input_frame_truth(dataset.samples[index], info, size, annotations, index)
            anchors, kept, classes = select(boxes[position] * size, scores[position], NMSConfig())
            coefficients = task[MASK_COEFFICIENTS][position][anchors]
            proto_boxes = boxes[position][anchors] * (size // 4)
            found = proto_frame_masks(
                proto_boxes, kept.tolist(), classes, coefficients, task[MASK_PROTOTYPES][position], index
            )
            results.extend(found)
    categories = [{"id": index, "name": name} for index, name in enumerate(dataset.names)]
    truth = {"images": images, "annotations": annotations, "categories": categories}
    return coco_evaluate(truth, results, dataset.names, "segm")


def main(data, models):
    dataset = DetectionDataset.from_data_yaml(data, "val")
    for model in models:
        ours = evaluate(open_runner(model), dataset)
        theirs = ultralytics_style_masks(model, dataset)
        box, mask = ours.metrics, ours.task_metrics["mask"]
        print(
            f"{model}: box {box['map50_95']:.4f} / {box['map50']:.4f}; mask, tfyolo-eval {mask['map50_95']:.4f} / "
            f"{mask['map50']:.4f}; mask, Ultralytics' val convention {theirs['map50_95']:.4f} / {theirs['map50']:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
