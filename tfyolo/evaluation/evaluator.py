"""Scores any runner on a dataset with the shared letterbox, decode, NMS and pycocotools."""

import dataclasses

from tfyolo.data.pipeline import evaluation_batches
from tfyolo.errors import DataError
from tfyolo.evaluation.coco_metrics import coco_detections, coco_evaluate, coco_ground_truth
from tfyolo.ops.nms import NMSConfig, non_max_suppression


@dataclasses.dataclass
class Evaluation:
    """metrics: the dict of `coco_evaluate`; detections[i]: (boxes xyxy original px, scores, class_ids)."""

    metrics: dict
    detections: dict
    num_images: int


def evaluate(runner, dataset, batch_size=8, nms_config=NMSConfig(), indices=None, progress=None, on_batch=None):
    """Runs `runner` over `dataset` (or the sample `indices`) and returns an `Evaluation`.

    runner: any object with `input_size` and `predict(float32 batch) -> (boxes, scores)` where boxes are xyxy
    normalized to the input and scores are probabilities (see `tfyolo.evaluation.runners`).
    progress: optional callable(number of images done) for a progress bar.
    on_batch: optional callable(sample indices, raw outputs dict, boxes, scores), e.g. to compare models.
    """
    if runner.num_classes != dataset.num_classes:
        raise DataError(
            f"{dataset.description}: the dataset has {dataset.num_classes} classes but the model predicts "
            f"{runner.num_classes}. Evaluate with the data the model was trained for."
        )
    size = runner.input_size
    detections, image_sizes, results = {}, {}, []
    for chunk, batch, infos in evaluation_batches(dataset, size, batch_size, indices):
        raw = runner.predict_raw(batch)
        boxes, scores = runner.decode(raw)
        if on_batch:
            on_batch(chunk, raw, boxes, scores)
        for index, image_boxes, image_scores, info in zip(chunk, boxes, scores, infos):
            kept_boxes, kept_scores, kept_classes = non_max_suppression(image_boxes * size, image_scores, nms_config)
            original = info.to_original(kept_boxes)
            detections[index] = (original, kept_scores, kept_classes)
            image_sizes[index] = (info.original_height, info.original_width)
            results.extend(coco_detections(index, original, kept_scores, kept_classes))
        if progress:
            progress(len(chunk))
    metrics = coco_evaluate(coco_ground_truth(dataset, image_sizes), results, dataset.names)
    return Evaluation(metrics=metrics, detections=detections, num_images=len(image_sizes))
