"""`tfyolo-eval --report DIR`: a Markdown summary and PNG plots (PR curves, confidence histogram, examples)."""

from pathlib import Path

import cv2
import numpy as np

from tfyolo.data.images import read_image_rgb
from tfyolo.evaluation.model_evaluation import confidence_histogram
from tfyolo.io_utils import atomic_write_text
from tfyolo.plots import plot_pr_curves


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confidence_histogram(evaluation, path):
    plt = _plt()
    counts, edges = confidence_histogram(evaluation)
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.bar(edges[:-1], counts, width=np.diff(edges), align="edge", edgecolor="black")
    axis.set(xlabel="detection confidence", ylabel="detections", title="Confidence histogram", yscale="log")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def draw_examples(dataset, evaluation, path, count=4, confidence=0.25):
    tiles = []
    for index in sorted(evaluation.detections)[:count]:
        sample = dataset.samples[index]
        image = read_image_rgb(sample.image_path)
        height, width = image.shape[:2]
        for box in sample.boxes * [width, height, width, height]:
            cv2.rectangle(image, tuple(int(v) for v in box[:2]), tuple(int(v) for v in box[2:]), (0, 255, 0), 2)
        boxes, scores, classes = evaluation.detections[index]
        for box, score, class_id in zip(boxes, scores, classes):
            if score < confidence:
                continue
            top_left = tuple(int(v) for v in box[:2])
            cv2.rectangle(image, top_left, tuple(int(v) for v in box[2:]), (255, 0, 0), 2)
            cv2.putText(
                image,
                f"{dataset.names[class_id]} {score:.2f}",
                (top_left[0], max(top_left[1] - 3, 10)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4,
                (255, 0, 0),
                1,
            )
        scale = 320 / max(height, width)
        image = cv2.resize(image, (int(width * scale), int(height * scale)))
        tile = np.full((320, 320, 3), 255, np.uint8)
        tile[: image.shape[0], : image.shape[1]] = image
        tiles.append(tile)
    if tiles:
        cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(tiles, axis=1), cv2.COLOR_RGB2BGR))


def markdown_summary(report):
    lines = [
        f"# Evaluation of `{report['model']}`",
        "",
        f"Data: {report['data']} ({report['num_images']} images, layout {report['layout']}, "
        f"input {report['input_size']} px)",
        "",
        "| metric | model | reference | delta (points) |",
        "|---|---|---|---|",
    ]
    reference = report["reference"] or {}
    for key in ("map50_95", "map50", "map75", "precision", "recall"):
        ref = reference.get(key)
        delta = "" if ref is None else f"{100 * (report[key] - ref):+.2f}"
        lines.append(f"| {key} | {report[key]:.4f} | {'' if ref is None else f'{ref:.4f}'} | {delta} |")
    lines += ["", "| class | instances | AP50-95 | AP50 |", "|---|---|---|---|"]
    for name, entry in report["per_class"].items():
        if entry["ap50_95"] is not None:
            lines.append(f"| {name} | {entry['instances']} | {entry['ap50_95']:.4f} | {entry['ap50']:.4f} |")
    if report.get("output_errors"):
        lines += ["", "| output | max abs error | mean abs error | cosine |", "|---|---|---|---|"]
        for name, stats in report["output_errors"].items():
            lines.append(
                f"| {name} | {stats['max_abs_error']:.5g} | {stats['mean_abs_error']:.5g} | "
                f"{stats['cosine_similarity']:.6f} |"
            )
        agreement = report["detection_agreement"]
        if agreement["agreement"] is not None:
            lines += [
                "",
                f"Detection agreement: {agreement['agreement']:.3f} of {agreement['reference_detections']} "
                f"reference detections (conf >= {agreement['confidence']}) matched at IoU >= {agreement['iou']}.",
            ]
    lines += [
        "",
        "![PR curves](pr_curves.png)",
        "",
        "![confidence](confidence_histogram.png)",
        "",
        "![examples: green = ground truth, red = predictions >= 0.25](examples.png)",
        "",
    ]
    return "\n".join(lines)


def write_report(directory, report, dataset, evaluation):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    plot_pr_curves(evaluation.metrics["pr_curves"], directory / "pr_curves.png", "PR curves at IoU 0.5")
    plot_confidence_histogram(evaluation, directory / "confidence_histogram.png")
    draw_examples(dataset, evaluation, directory / "examples.png")
    atomic_write_text(directory / "summary.md", markdown_summary(report))
