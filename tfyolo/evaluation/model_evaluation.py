"""A model's full evaluation, optionally against a reference: the dict behind `tfyolo-eval --json`."""

import numpy as np

from tfyolo.evaluation.comparison import OutputErrors, detection_agreement
from tfyolo.evaluation.evaluator import evaluate
from tfyolo.ops.nms import NMSConfig

SUMMARY_KEYS = ("map50_95", "map50", "map75", "precision", "recall", "f1", "best_f1_confidence")


def _summary(runner, evaluation):
    metrics = evaluation.metrics
    summary = {
        "model": runner.description,
        "layout": runner.layout,
        "input_size": runner.input_size,
        "num_images": evaluation.num_images,
    }
    summary.update({key: metrics[key] for key in SUMMARY_KEYS})
    summary["per_class"] = {
        name: {"ap50_95": entry["ap50_95"], "ap50": entry["ap50"], "instances": entry["instances"]}
        for name, entry in metrics["per_class"].items()
    }
    return summary


class ReferenceRun:
    """A reference model evaluated once, with its outputs kept, to compare any number of models against."""

    def __init__(self, runner, dataset, batch_size=8, nms_config=NMSConfig(), progress=None):
        self.runner = runner
        self.outputs = {}

        def keep(chunk, raw, boxes, scores):
            for position, index in enumerate(chunk):
                self.outputs[index] = (
                    {name: value[position] for name, value in raw.items()},
                    {"boxes": boxes[position], "scores": scores[position]},
                )

        self.evaluation = evaluate(runner, dataset, batch_size, nms_config, progress=progress, on_batch=keep)


def evaluate_model(
    runner, dataset, split, reference_runner=None, batch_size=8, nms_config=NMSConfig(), progress=None, reference=None
):
    """Evaluates `runner` on `dataset`, and against `reference_runner` (or a ready `ReferenceRun`) if given.

    Returns (report dict, Evaluation of the model, Evaluation of the reference or None). mAP values are in
    [0, 1]; deltas are model minus reference in points (x 100), negative for a drop.
    """
    if reference is None and reference_runner is not None:
        reference = ReferenceRun(reference_runner, dataset, batch_size, nms_config, progress)
    reference_runner = reference.runner if reference else None
    reference_outputs = reference.outputs if reference else {}
    reference_evaluation = reference.evaluation if reference else None

    errors = {}

    def compare(chunk, raw, boxes, scores):
        for position, index in enumerate(chunk):
            reference_raw, reference_decoded = reference_outputs[index]
            pairs = [
                (name, reference_raw[name], value[position])
                for name, value in raw.items()
                if name in reference_raw and reference_raw[name].shape == value[position].shape
            ]
            # Different layouts or input sizes: compare what both decode to instead.
            if not pairs and reference_decoded["boxes"].shape == boxes[position].shape:
                pairs = [
                    ("boxes", reference_decoded["boxes"], boxes[position]),
                    ("scores", reference_decoded["scores"], scores[position]),
                ]
            for name, expected, actual in pairs:
                errors.setdefault(name, OutputErrors()).update(expected, actual)

    evaluation = evaluate(
        runner,
        dataset,
        batch_size,
        nms_config,
        progress=progress,
        on_batch=compare if reference_runner is not None else None,
    )
    report = {"data": dataset.description, "split": split}
    report.update(_summary(runner, evaluation))
    report["reference"] = None
    report["delta_map50_95"] = None
    if reference_evaluation is not None:
        reference = _summary(reference_runner, reference_evaluation)
        report["reference"] = reference
        report["delta_map50_95"] = 100.0 * (report["map50_95"] - reference["map50_95"])
        report["delta_map50"] = 100.0 * (report["map50"] - reference["map50"])
        report["delta_per_class"] = {
            name: (
                None
                if entry["ap50_95"] is None or reference["per_class"][name]["ap50_95"] is None
                else 100.0 * (entry["ap50_95"] - reference["per_class"][name]["ap50_95"])
            )
            for name, entry in report["per_class"].items()
        }
        report["output_errors"] = {name: stats.summary() for name, stats in errors.items()}
        report["detection_agreement"] = detection_agreement(reference_evaluation.detections, evaluation.detections)
    return report, evaluation, reference_evaluation


def drop_exceeds(report, max_drop):
    """True when mAP50-95 fell by more than `max_drop` points against the reference."""
    delta = report.get("delta_map50_95")
    return delta is not None and -delta > max_drop + 1e-9


def confidence_histogram(evaluation, bins=20):
    scores = np.concatenate([scores for _, scores, _ in evaluation.detections.values()] or [np.zeros(0)])
    counts, edges = np.histogram(scores, bins=bins, range=(0.0, 1.0))
    return counts, edges
