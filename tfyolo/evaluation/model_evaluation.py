"""A model's full evaluation, optionally against a reference: the dict behind `tfyolo-eval --json`."""

import numpy as np

from tfyolo.evaluation.comparison import OutputErrors, detection_agreement
from tfyolo.evaluation.evaluator import evaluate_runners, runner_task
from tfyolo.evaluation.task_scoring import SCORINGS
from tfyolo.ops.nms import NMSConfig

SUMMARY_KEYS = ("map50_95", "map50", "map75", "precision", "recall", "f1", "best_f1_confidence")
# The report keys of the task summaries beside the box one ("mask").
TASK_REPORT_KEYS = tuple(scoring.report_key for scoring in SCORINGS.values())


def _metrics_summary(metrics):
    summary = {key: metrics[key] for key in SUMMARY_KEYS}
    summary["per_class"] = {
        name: {"ap50_95": entry["ap50_95"], "ap50": entry["ap50"], "instances": entry["instances"]}
        for name, entry in metrics["per_class"].items()
    }
    return summary


def _summary(runner, evaluation):
    """The box summary at the top level and one per other iouType of the model's task under its report key
    ("mask"), so a detector's report is what it always was."""
    summary = {
        "model": runner.description,
        "layout": runner.layout,
        "task": runner_task(runner).name,
        "input_size": runner.input_size,
        "num_images": evaluation.num_images,
    }
    summary.update(_metrics_summary(evaluation.metrics))
    for report_key, metrics in evaluation.task_metrics.items():
        summary[report_key] = _metrics_summary(metrics)
    return summary


def _per_class_delta(summary, reference):
    return {
        label: (
            None
            if entry["ap50_95"] is None or reference["per_class"][label]["ap50_95"] is None
            else 100.0 * (entry["ap50_95"] - reference["per_class"][label]["ap50_95"])
        )
        for label, entry in summary["per_class"].items()
    }


def _add_deltas(report, reference):
    """Model minus reference in points: boxes at the top level, each task summary both have under
    `delta_<key>_map50_95` / `delta_<key>_map50` (a segmentation model against a detector compares boxes only)."""
    report["delta_map50_95"] = 100.0 * (report["map50_95"] - reference["map50_95"])
    report["delta_map50"] = 100.0 * (report["map50"] - reference["map50"])
    report["delta_per_class"] = _per_class_delta(report, reference)
    for key in TASK_REPORT_KEYS:
        if key in report and key in reference:
            report[f"delta_{key}_map50_95"] = 100.0 * (report[key]["map50_95"] - reference[key]["map50_95"])
            report[f"delta_{key}_map50"] = 100.0 * (report[key]["map50"] - reference[key]["map50"])


REFERENCE = "reference"


def evaluate_models(
    runners, dataset, split, reference_runner=None, batch_size=8, nms_config=NMSConfig(), progress=None
):
    """Evaluates every runner of `runners` ({name: runner}) on `dataset`, each against `reference_runner` if given,
    in one lockstep pass: memory does not grow with the number of images.

    Returns ({name: report dict}, {name: Evaluation}, the reference's Evaluation or None). mAP values are in
    [0, 1]; deltas are model minus reference in points (x 100), negative for a drop.
    """
    if REFERENCE in runners:
        raise ValueError(f"{REFERENCE!r} names the reference; give the models other names.")
    errors = {name: {} for name in runners}

    def compare(chunk, outputs):
        reference_raw, reference_boxes, reference_scores = outputs[REFERENCE]
        for name in runners:
            raw, boxes, scores = outputs[name]
            pairs = [
                (output, reference_raw[output], values)
                for output, values in raw.items()
                if output in reference_raw and reference_raw[output].shape == values.shape
            ]
            # Different layouts: compare what both decode to instead.
            if not pairs and reference_boxes.shape == boxes.shape:
                pairs = [("boxes", reference_boxes, boxes), ("scores", reference_scores, scores)]
            for output, expected, actual in pairs:
                errors[name].setdefault(output, OutputErrors()).update(expected, actual)

    together = dict(runners)
    if reference_runner is not None:
        together[REFERENCE] = reference_runner
    evaluations = evaluate_runners(
        together, dataset, batch_size, nms_config, progress, on_batch=compare if reference_runner else None
    )
    reference_evaluation = evaluations.pop(REFERENCE, None)
    reference = None if reference_evaluation is None else _summary(reference_runner, reference_evaluation)
    reports = {}
    for name, runner in runners.items():
        report = {"data": dataset.description, "split": split}
        report.update(_summary(runner, evaluations[name]))
        report["reference"] = None
        report["delta_map50_95"] = None
        if reference is not None:
            report["reference"] = reference
            _add_deltas(report, reference)
            report["output_errors"] = {output: stats.summary() for output, stats in errors[name].items()}
            report["detection_agreement"] = detection_agreement(
                reference_evaluation.detections, evaluations[name].detections
            )
        reports[name] = report
    return reports, evaluations, reference_evaluation


def evaluate_model(runner, dataset, split, reference_runner=None, batch_size=8, nms_config=NMSConfig(), progress=None):
    """`evaluate_models` for one model: (report dict, its Evaluation, the reference's Evaluation or None)."""
    reports, evaluations, reference_evaluation = evaluate_models(
        {"model": runner}, dataset, split, reference_runner, batch_size, nms_config, progress
    )
    return reports["model"], evaluations["model"], reference_evaluation


# Below this the reference detects (almost) nothing on the data, and "no drop" against it proves nothing.
MIN_REFERENCE_MAP = 1e-3


def reference_verifies_nothing(reference_map50_95, data=None):
    """The reason a gate cannot pass against a reference that scores (about) 0 on its data, or None."""
    if reference_map50_95 is None or reference_map50_95 >= MIN_REFERENCE_MAP:
        return None
    return (
        f"the float reference scores mAP50-95 {reference_map50_95:.4f}{f' on {data}' if data else ''}: it detects "
        "nothing there, so a comparison against it verifies nothing (wrong data, or an untrained model?)"
    )


def drops(report):
    """{what: points lost} of every mAP50-95 the report compares with its reference: "box", and each task summary
    both have ("mask"); empty without a reference."""
    found = {"box": report.get("delta_map50_95")}
    found.update({key: report.get(f"delta_{key}_map50_95") for key in TASK_REPORT_KEYS})
    return {what: -delta for what, delta in found.items() if delta is not None}


def worst_delta(report):
    """The largest loss of `drops` as a (negative) delta in points: what a gate or a budget holds a segmentation
    model's row to (its box or its mask mAP50-95, whichever fell more); None without a reference."""
    found = drops(report)
    return -max(found.values()) if found else None


def task_columns(metrics, reference=None):
    """A report row's columns for each task summary in `metrics` (`Evaluation.all_metrics` or a report dict):
    `<key>_map50_95`, `<key>_map50` and, against `reference`, `delta_<key>_map50_95` in points."""
    columns = {}
    for key in TASK_REPORT_KEYS:
        if key in metrics:
            columns[f"{key}_map50_95"] = metrics[key]["map50_95"]
            columns[f"{key}_map50"] = metrics[key]["map50"]
            if reference is not None and key in reference:
                columns[f"delta_{key}_map50_95"] = 100.0 * (metrics[key]["map50_95"] - reference[key]["map50_95"])
    return columns


def drop_exceeds(report, max_drop):
    """True when a mAP50-95 (boxes, or a task's: masks) fell by more than `max_drop` points against the reference."""
    return any(drop > max_drop + 1e-9 for drop in drops(report).values())


def confidence_histogram(evaluation, bins=20):
    scores = np.concatenate([scores for _, scores, _ in evaluation.detections.values()] or [np.zeros(0)])
    counts, edges = np.histogram(scores, bins=bins, range=(0.0, 1.0))
    return counts, edges
