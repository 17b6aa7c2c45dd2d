"""Scores runners on a dataset with the shared letterbox, decode, NMS and pycocotools.

Several runners are evaluated in lockstep: each batch is letterboxed once and sent through every runner, so a
comparison between two models sees the same tensors and never has to keep a model's raw outputs beyond the batch
(about 4.8 MB per image at 640 px with 80 classes).
"""

import dataclasses

from tfyolo.data.pipeline import evaluation_batches
from tfyolo.errors import DataError
from tfyolo.evaluation.coco_metrics import coco_detections, coco_evaluate, coco_ground_truth
from tfyolo.ops.nms import NMSConfig
from tfyolo.ops.topk import select_detections


@dataclasses.dataclass
class Evaluation:
    """metrics: the dict of `coco_evaluate`; detections[i]: (boxes xyxy original px, scores, class_ids)."""

    metrics: dict
    detections: dict
    num_images: int


def evaluate_runners(
    runners, dataset, batch_size=8, nms_config=NMSConfig(), progress=None, on_batch=None, cache_images=False
):
    """Runs every runner of `runners` ({name: runner}, same input size) over `dataset`; returns {name: Evaluation}.

    A runner is any object with `input_size`, `num_classes`, `predict_raw(float32 batch) -> {output: array}`,
    `decode(raw) -> (boxes xyxy normalized to the input, class probabilities)` and `postprocess` ("nms", or "topk"
    for a one-to-one head; see `tfyolo.evaluation.runners`).
    progress: optional callable(number of images done) for a progress bar.
    on_batch: optional callable(sample indices, {name: (raw, boxes, scores)}), e.g. to compare the models.
    cache_images: keep the letterboxed images for another pass (a trainer's per-epoch validation); one pass over
    a large split does not, so memory stays flat whatever the number of images.
    """
    sizes = {runner.input_size for runner in runners.values()}
    if len(sizes) != 1:
        raise DataError(f"models evaluated together must share one input size, received {sorted(sizes)}.")
    for runner in runners.values():
        if runner.num_classes != dataset.num_classes:
            raise DataError(
                f"{dataset.description}: the dataset has {dataset.num_classes} classes but the model predicts "
                f"{runner.num_classes} ({runner.description}). Evaluate with the data the model was trained for."
            )
    (size,) = sizes
    detections = {name: {} for name in runners}
    results = {name: [] for name in runners}
    image_sizes = {}
    selectors = {name: select_detections(runner.postprocess) for name, runner in runners.items()}
    for chunk, batch, infos in evaluation_batches(dataset, size, batch_size, cache=cache_images):
        outputs = {}
        for name, runner in runners.items():
            raw = runner.predict_raw(batch)
            boxes, scores = runner.decode(raw)
            outputs[name] = (raw, boxes, scores)
            for index, image_boxes, image_scores, info in zip(chunk, boxes, scores, infos):
                kept_boxes, kept_scores, kept_classes = selectors[name](image_boxes * size, image_scores, nms_config)
                original = info.to_original(kept_boxes)
                detections[name][index] = (original, kept_scores, kept_classes)
                results[name].extend(coco_detections(index, original, kept_scores, kept_classes))
        for index, info in zip(chunk, infos):
            image_sizes[index] = (info.original_height, info.original_width)
        if on_batch:
            on_batch(chunk, outputs)
        if progress:
            progress(len(chunk))
    ground_truth = coco_ground_truth(dataset, image_sizes)
    return {
        name: Evaluation(
            metrics=coco_evaluate(ground_truth, results[name], dataset.names),
            detections=detections[name],
            num_images=len(image_sizes),
        )
        for name in runners
    }


def evaluate(runner, dataset, batch_size=8, nms_config=NMSConfig(), progress=None, cache_images=False):
    """`evaluate_runners` for one runner: its `Evaluation`."""
    return evaluate_runners({"model": runner}, dataset, batch_size, nms_config, progress, cache_images=cache_images)[
        "model"
    ]
