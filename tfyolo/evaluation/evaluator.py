"""Scores runners on a dataset with the shared letterbox, decode, NMS and pycocotools.

Several runners are evaluated in lockstep: each batch is letterboxed once and sent through every runner, so a
comparison between two models sees the same tensors and never has to keep a model's raw outputs beyond the batch
(about 4.8 MB per image at 640 px with 80 classes).
"""

import dataclasses

from tfyolo.data.pipeline import evaluation_batches
from tfyolo.errors import DataError
from tfyolo.evaluation.coco_metrics import coco_detections, coco_evaluate, coco_ground_truth
from tfyolo.evaluation.task_scoring import task_scorings
from tfyolo.models.tasks import DETECT
from tfyolo.ops.nms import NMSConfig
from tfyolo.ops.topk import select_anchors


@dataclasses.dataclass
class Evaluation:
    """metrics: the dict of `coco_evaluate` (boxes); detections[i]: (boxes xyxy original px, scores, class_ids);
    task_metrics: {report key: `coco_evaluate` dict} of the other iouTypes its task is scored with ("mask");
    image_sizes: {i: (original height, width)} of the images scored, for rebuilding the COCO ground truth."""

    metrics: dict
    detections: dict
    image_sizes: dict
    task_metrics: dict = dataclasses.field(default_factory=dict)

    @property
    def num_images(self):
        return len(self.image_sizes)

    @property
    def all_metrics(self):
        """The box metrics with each task's beside them under its report key ({..., "mask": {...}})."""
        return {**self.metrics, **self.task_metrics}


def runner_task(runner):
    """A runner's ModelTask; a runner that names none (a test's stand-in) is a detector."""
    return getattr(runner, "task", DETECT)


def evaluate_runners(
    runners, dataset, batch_size=8, nms_config=NMSConfig(), progress=None, on_batch=None, cache_images=False
):
    """Runs every runner of `runners` ({name: runner}, same input size) over `dataset`; returns {name: Evaluation}.

    A runner is any object with `input_size`, `num_classes`, `predict_raw(float32 batch) -> {output: array}`,
    `decode(raw) -> (boxes xyxy normalized to the input, class probabilities)` and `postprocess` ("nms", or "topk"
    for a one-to-one head; see `tfyolo.evaluation.runners`); a model of a task beyond detection also has `task`
    (its ModelTask) and `task_outputs(raw) -> {output: array}` (tfyolo's names and layouts), which the task's
    scorings (`tfyolo.evaluation.task_scoring`) read.
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
    scorings = {name: task_scorings(runner_task(runner)) for name, runner in runners.items()}
    for found in scorings.values():
        for scoring in found:
            scoring.check_dataset(dataset)  # before the pass, not after it
    detections = {name: {} for name in runners}
    results = {name: {"bbox": [], **{scoring.iou_type: [] for scoring in scorings[name]}} for name in runners}
    image_sizes = {}
    selectors = {name: select_anchors(runner.postprocess) for name, runner in runners.items()}
    for chunk, batch, infos in evaluation_batches(dataset, size, batch_size, cache=cache_images):
        outputs = {}
        for name, runner in runners.items():
            raw = runner.predict_raw(batch)
            boxes, scores = runner.decode(raw)
            outputs[name] = (raw, boxes, scores)
            task_outputs = runner.task_outputs(raw) if scorings[name] else {}
            for position, (index, info) in enumerate(zip(chunk, infos)):
                image_boxes = boxes[position] * size
                anchors, kept_scores, kept_classes = selectors[name](image_boxes, scores[position], nms_config)
                original = info.to_original(image_boxes[anchors])
                detections[name][index] = (original, kept_scores, kept_classes)
                results[name]["bbox"].extend(coco_detections(index, original, kept_scores, kept_classes))
                selected = (anchors, kept_scores, kept_classes, original)
                for scoring in scorings[name]:
                    found = scoring.detections(index, selected, task_outputs, position, info, size)
                    results[name][scoring.iou_type].extend(found)
        for index, info in zip(chunk, infos):
            image_sizes[index] = (info.original_height, info.original_width)
        if on_batch:
            on_batch(chunk, outputs)
        if progress:
            progress(len(chunk))
    return _score(runners, dataset, image_sizes, scorings, results, detections)


def _score(runners, dataset, image_sizes, scorings, results, detections):
    """{name: Evaluation} from the collected COCO results, each iouType's ground truth made once."""
    ground_truths = {"bbox": coco_ground_truth(dataset, image_sizes)}
    for scoring in {scoring.iou_type: scoring for found in scorings.values() for scoring in found}.values():
        ground_truths[scoring.iou_type] = scoring.ground_truth(dataset, image_sizes)
    evaluations = {}
    for name in runners:
        task_metrics = {
            scoring.report_key: coco_evaluate(
                ground_truths[scoring.iou_type], results[name][scoring.iou_type], dataset.names, scoring.iou_type
            )
            for scoring in scorings[name]
        }
        evaluations[name] = Evaluation(
            metrics=coco_evaluate(ground_truths["bbox"], results[name]["bbox"], dataset.names),
            detections=detections[name],
            image_sizes=image_sizes,
            task_metrics=task_metrics,
        )
    return evaluations


def evaluate(runner, dataset, batch_size=8, nms_config=NMSConfig(), progress=None, cache_images=False):
    """`evaluate_runners` for one runner: its `Evaluation`."""
    return evaluate_runners({"model": runner}, dataset, batch_size, nms_config, progress, cache_images=cache_images)[
        "model"
    ]
