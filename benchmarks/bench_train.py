"""Real-data training benchmark (issue: foundation): PennFudan from scratch, n at 320.

1. Throughput: images/second of the train step (first step, the trace, excluded) for float32 and mixed
   precision at batch 8 and 16, one short epoch each with no validation.
2. Accuracy: a full from-scratch run for a fixed epoch budget, validated with pycocotools on PennFudan val.
   The model lands in benchmarks/work/pennfudan_n_320/ where the PTQ/QAT benchmarks pick it up.

With `--task segment` the model is a segmenter trained on pennfudan_seg (the same images with instance polygons)
and the accuracy rows add mask mAP50-95.

Usage: python -m benchmarks.bench_train [--family yolov8|yolo11|yolo26] [--task detect|segment] [--epochs 120]
    [--precision float32 ...] [--skip-throughput] [--skip-accuracy]
"""

import shutil
import time

import click

from benchmarks.common import (
    PENNFUDAN,
    WORK,
    machine,
    markdown_table,
    pennfudan_seg_data,
    require_dataset,
    write_results,
)


def train(config):
    from tfyolo.training.trainer import Trainer

    started = time.perf_counter()
    from tfyolo.console import TqdmTrainingReporter

    history = Trainer(config, reporter=TqdmTrainingReporter()).fit()
    return history, time.perf_counter() - started


def reference_line(family):
    """Ultralytics' own 60-epoch from-scratch model of the family on pennfudan_seg, as `make bench-seg` scored it
    with tfyolo-eval (masks at the original image size) and as Ultralytics' val did (80 x 80 masks)."""
    import json

    from benchmarks.common import RESULTS, SHARED

    key = {"yolov8": "yolov8n-seg", "yolo11": "yolo11n-seg", "yolo26": "yolo26n-seg one2many"}[family]
    recorded = RESULTS / "seg_pennfudan.json"
    ours = json.loads(recorded.read_text())["results"][key]["float"] if recorded.is_file() else None
    source = SHARED.parent / "weights" / f"ultralytics_{family}n_pennfudan_seg" / "ul_results.json"
    val = json.loads(source.read_text())["val_ultralytics"]["results"]["pt_rect"]
    return (
        f"Ultralytics' {family}n-seg trained from scratch (60 epochs, 320 px, batch 8): box / mask mAP50-95 "
        + (f"{ours['box']:.3f} / {ours['mask']:.3f} under tfyolo-eval ({recorded.name}, {key}), " if ours else "")
        + f"{val['box']['map50_95']:.3f} / {val['mask']['map50_95']:.3f} under Ultralytics' own val of its best.pt."
    )


@click.command()
@click.option("--epochs", default=120, show_default=True)
@click.option("--batch", default=8, show_default=True)
@click.option("--imgsz", default=320, show_default=True)
@click.option("--activation", default="silu", show_default=True)
@click.option("--family", default="yolov8", show_default=True, type=click.Choice(["yolov8", "yolo11", "yolo26"]))
@click.option(
    "--precision",
    "precisions",
    multiple=True,
    type=click.Choice(["float32", "mixed_float16", "mixed_bfloat16"]),
    help="Throughput rows to measure [default: all three].",
)
@click.option("--task", default="detect", show_default=True, type=click.Choice(["detect", "segment"]))
@click.option("--skip-throughput", is_flag=True)
@click.option("--skip-accuracy", is_flag=True)
def main(epochs, batch, imgsz, activation, family, precisions, task, skip_throughput, skip_accuracy):
    from tfyolo.training.train_config import TrainConfig

    data = pennfudan_seg_data() if task == "segment" else require_dataset(PENNFUDAN)
    # A detection run's names are what they were before tasks existed.
    suffix = "" if task == "detect" else f"_{task}"
    results = {"machine": machine(), "throughput": [], "accuracy": None}
    if not skip_throughput:
        for precision in precisions or ("float32", "mixed_float16", "mixed_bfloat16"):
            for throughput_batch in (8, 16):
                out = WORK / f"throughput_{family}{suffix}_{precision}_{throughput_batch}"
                shutil.rmtree(out, ignore_errors=True)
                config = TrainConfig(
                    data=str(data),
                    out=str(out),
                    imgsz=imgsz,
                    epochs=1,
                    batch=throughput_batch,
                    mixed_precision=None if precision == "float32" else precision,
                    val_interval=0,
                    activation=activation,
                    family=family,
                    task=task,
                )
                history, seconds = train(config)
                row = {
                    "precision": precision,
                    "batch": throughput_batch,
                    "images_per_second": history[0]["images_per_second"],
                    "epoch_seconds": seconds,
                }
                results["throughput"].append(row)
                click.echo(f"throughput {row}", err=True)
    if not skip_accuracy:
        out = WORK / (
            f"pennfudan_n_{imgsz}"
            + ("" if activation == "silu" else f"_{activation}")
            + ("" if family == "yolov8" else f"_{family}")
            + suffix
        )
        config = TrainConfig(
            data=str(data),
            out=str(out),
            imgsz=imgsz,
            epochs=epochs,
            batch=batch,
            activation=activation,
            family=family,
            val_interval=5,
            close_mosaic=10,
            task=task,
        )
        history, seconds = train(config)
        from tfyolo.training.trainer import best_validated

        best = best_validated(history)
        validated = [row for row in history if row["map50_95"] is not None]
        results["accuracy"] = {
            "model": str(out / "best.keras"),
            "family": family,
            "epochs": epochs,
            "batch": batch,
            "imgsz": imgsz,
            "activation": activation,
            "best_epoch": best["epoch"],
            "map50": best["map50"],
            "map50_95": best["map50_95"],
            "mask_map50_95": best.get("mask_map50_95"),
            "wall_seconds_this_invocation": seconds,
            # Summed over every epoch of the run, including epochs done before a --resume.
            "train_seconds_total": sum(row["train_seconds"] for row in history),
            "median_images_per_second": sorted(row["images_per_second"] for row in history)[len(history) // 2],
            "curve": [(row["epoch"], row["map50"], row["map50_95"]) for row in validated],
        }
        one2one = out / "best_one2one.keras"
        if one2one.is_file():
            # A two-head run validates its one-to-many head; its one-to-one head is scored here, with top-k.
            from tfyolo.data.detection_dataset import DetectionDataset
            from tfyolo.evaluation.evaluator import evaluate
            from tfyolo.jobs.model_runner import open_runner
            from tfyolo.training.trainer import validation_figures

            evaluation = evaluate(open_runner(one2one), DetectionDataset.from_data_yaml(data, "val"))
            metrics = validation_figures(evaluation.all_metrics)
            results["accuracy"]["one2one"] = {key: metrics.get(key) for key in ("map50", "map50_95", "mask_map50_95")}
    markdown = [
        f"# Training benchmark: PennFudan{' ' + task if suffix else ''}, {family}n, from scratch",
        "",
        f"Machine: {results['machine']}",
        "",
    ]
    if results["throughput"]:
        markdown += [
            "## Train-step throughput (320 px)",
            "",
            markdown_table(
                results["throughput"],
                [
                    ("precision", "precision", None),
                    ("batch", "batch", None),
                    ("images_per_second", "images/s", "{:.2f}"),
                    ("epoch_seconds", "1-epoch wall s (incl. trace)", "{:.0f}"),
                ],
            ),
            "",
        ]
    if results["accuracy"]:
        accuracy = results["accuracy"]
        markdown += [
            "## Accuracy after a fixed budget",
            "",
            markdown_table(
                [accuracy],
                [
                    ("epochs", "epochs", None),
                    ("batch", "batch", None),
                    ("best_epoch", "best epoch", None),
                    ("map50", "val mAP50", "{:.3f}"),
                    ("map50_95", "val mAP50-95", "{:.3f}"),
                    *([("mask_map50_95", "mask mAP50-95", "{:.3f}")] if suffix else []),
                    ("train_seconds_total", "train-step s (all epochs)", "{:.0f}"),
                    ("median_images_per_second", "median img/s", "{:.1f}"),
                ],
            ),
            "",
            "Validation every 5 epochs (pycocotools, conf 0.001, IoU 0.7, 300 dets); the best of those is kept.",
            "",
        ]
        if suffix:
            markdown += [reference_line(family), ""]
        if "one2one" in accuracy:
            markdown += [
                "Both heads trained (ProgLoss); the table is the one-to-many head with NMS, as training validates. "
                f"The same best epoch's one-to-one head with top-k (no NMS): mAP50 {accuracy['one2one']['map50']:.3f}, "
                f"mAP50-95 {accuracy['one2one']['map50_95']:.3f}"
                + (f", mask mAP50-95 {accuracy['one2one']['mask_map50_95']:.3f}." if suffix else "."),
                "",
            ]
    name = (
        "train_pennfudan"
        + ("" if activation == "silu" else f"_{activation}")
        + ("" if family == "yolov8" else f"_{family}")
        + suffix
    )
    if precisions:
        name += "_" + "_".join(precisions)
    if skip_accuracy:
        name += "_throughput"
    elif skip_throughput:
        name += "_accuracy"
    json_path, md_path = write_results(name, results, "\n".join(markdown))
    click.echo(f"Wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
