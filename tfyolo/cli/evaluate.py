"""`tfyolo-eval MODEL`: score a .keras, SavedModel, .tflite or Ultralytics .pt / .onnx detector with COCO mAP,
optionally against a reference."""

import os
import sys
from pathlib import Path

import click

from tfyolo.cli.common import AT_LEAST_ONE, MODEL_INPUT_SIZE, check_tflite_in_child, user_errors, verify_and_report
from tfyolo.cli.quiet import silence_native_logs
from tfyolo.console import progress_bar
from tfyolo.metadata import resolve_data


def _print_metrics(summary, reference, prefix, width):
    for key in ("map50_95", "map50", "map75", "precision", "recall"):
        line = f"{prefix + key:<{width}}{summary[key]:>10.4f}"
        if reference:
            line += f"{reference[key]:>12.4f}{100 * (summary[key] - reference[key]):>+11.2f}"
        click.echo(line)


def print_table(report):
    from tfyolo.evaluation.model_evaluation import TASK_REPORT_KEYS

    click.echo("")
    reference = report["reference"]
    tasks = [key for key in TASK_REPORT_KEYS if key in report]
    width = 16 if tasks else 12  # a detector's table as it always was
    header = f"{'':<{width}}{'model':>10}" + (f"{'reference':>12}{'delta pts':>11}" if reference else "")
    click.echo(header)
    _print_metrics(report, reference, "", width)
    for key in tasks:
        # A segmentation model's mask scores under the box ones, against the reference's where it has them.
        _print_metrics(report[key], (reference or {}).get(key), f"{key} ", width)
    classes = [(name, entry) for name, entry in report["per_class"].items() if entry["ap50_95"] is not None]
    if 1 < len(classes) <= 20:
        click.echo(f"\n{'class':<16}{'inst':>6}{'AP50-95':>9}{'AP50':>8}")
        for name, entry in classes:
            click.echo(f"{name[:15]:<16}{entry['instances']:>6}{entry['ap50_95']:>9.4f}{entry['ap50']:>8.4f}")
    if report.get("output_errors"):
        click.echo(f"\n{'output':<18}{'max abs err':>13}{'mean abs err':>14}{'cosine':>10}")
        for name, stats in report["output_errors"].items():
            click.echo(
                f"{name:<18}{stats['max_abs_error']:>13.5g}{stats['mean_abs_error']:>14.5g}"
                f"{stats['cosine_similarity']:>10.6f}"
            )
        agreement = report["detection_agreement"]
        if agreement["agreement"] is not None:
            click.echo(
                f"detection agreement {agreement['agreement']:.3f} "
                f"({agreement['matched']}/{agreement['reference_detections']} at conf>=0.25, IoU>=0.5)"
            )


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("model", type=click.Path())
@click.option("--data", "data_yaml", type=click.Path(), help="data.yaml [default: the model's metadata].")
@click.option("--coco-json", type=click.Path(), help="Ground truth from a COCO instances JSON instead of YOLO labels.")
@click.option("--images", "images_dir", type=click.Path(), help="Image folder for --coco-json.")
@click.option("--split", default="val", show_default=True)
@click.option("--imgsz", type=MODEL_INPUT_SIZE, default=None, help="Input size [default: the model's].")
@click.option("--reference", type=click.Path(), help="Compare against this model (normally the float one).")
@click.option(
    "--max-drop",
    type=click.FloatRange(min=0.0),
    default=None,
    help="Exit 1 if mAP50-95 drops more than this many points.",
)
@click.option(
    "--spread",
    "halves",
    type=click.IntRange(min=0),
    default=0,
    help="With --reference: the mAP50-95 delta's standard error from this many random halves of the images "
    "(200 is a good count; 0: none).",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the results as JSON.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), help="Write summary.md and PNG plots.")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64), help="TFLite interpreter threads.")
@click.option(
    "--layout",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "tfyolo", "ultralytics", "ultralytics_end2end"]),
)
@click.option("--batch", default=8, show_default=True, type=AT_LEAST_ONE)
@click.option("--debug", is_flag=True, help="Show tracebacks and TensorFlow's native log lines (or TFYOLO_DEBUG=1).")
@user_errors
def main(
    model,
    data_yaml,
    coco_json,
    images_dir,
    split,
    imgsz,
    reference,
    max_drop,
    halves,
    json_path,
    report_dir,
    threads,
    layout,
    batch,
    debug,
):
    """Evaluate MODEL (.keras, .h5, SavedModel folder, .tflite, or an Ultralytics .pt / .onnx imported on the fly
    and cached) with COCO mAP on a dataset split."""
    if debug:
        os.environ["TFYOLO_DEBUG"] = "1"
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.evaluation.model_evaluation import drop_exceeds, drops, evaluate_model, reference_verifies_nothing
    from tfyolo.io_utils import atomic_write_json
    from tfyolo.jobs.model_runner import open_runner

    if Path(model).is_dir() and (Path(model) / "manifest.json").is_file():
        # A bundle folder: verifying it is what evaluating it means (hashes + golden vectors).
        return verify_and_report(model)
    if max_drop is not None and not reference:
        raise click.UsageError("--max-drop needs --reference.")
    if halves and not reference:
        raise click.UsageError("--spread needs --reference: it is the spread of the delta against it.")
    if halves == 1:
        raise click.UsageError("--spread 1 gives no spread: take 2 or more halves (200 is a good count).")
    from tfyolo.io_utils import ensure_writable_folder

    if json_path:
        ensure_writable_folder(Path(json_path).parent, "--json path")
    if report_dir:
        ensure_writable_folder(report_dir, "--report folder")
    for untrusted in (model, reference):
        if untrusted:
            check_tflite_in_child(untrusted)
    runner = open_runner(model, threads, layout, imgsz, progress=click.echo)
    if coco_json:
        if not images_dir:
            raise click.UsageError("--coco-json needs --images.")
        dataset = DetectionDataset.from_coco_json(coco_json, images_dir)
    else:
        dataset = DetectionDataset.from_data_yaml(resolve_data(data_yaml, model), split)
    reference_runner = (
        open_runner(reference, threads, "auto", imgsz or runner.input_size, progress=click.echo) if reference else None
    )
    with progress_bar(len(dataset), "evaluating") as bar:
        report, evaluation, reference_evaluation = evaluate_model(
            runner, dataset, split, reference_runner, batch_size=batch, progress=bar.update
        )
    print_table(report)
    if halves:
        from tfyolo.evaluation.image_resampling import evaluation_spreads

        spread = evaluation_spreads(dataset, {"model": evaluation}, reference_evaluation, halves)["model"]
        report["delta_map50_95_spread"] = spread
        click.echo(
            f"mAP50-95 delta {spread['difference']:+.2f} points: standard error {spread['standard_error']:.2f} from "
            f"{halves} random halves of the {evaluation.num_images} images (90%: {spread['low']:+.2f} to "
            f"{spread['high']:+.2f})."
        )
    if json_path:
        atomic_write_json(json_path, report)
    if report_dir:
        from tfyolo.cli.eval_report import write_report

        write_report(report_dir, report, dataset, evaluation)
    nothing = reference_verifies_nothing((report.get("reference") or {}).get("map50_95"), dataset.description)
    if max_drop is not None and nothing:
        click.echo(f"FAIL: {nothing}.", err=True)
        sys.exit(1)
    if max_drop is not None and drop_exceeds(report, max_drop):
        # Boxes as a detector's message always read; a segmentation model's masks named before theirs.
        lost = "; ".join(
            f"{'' if what == 'box' else what + ' '}mAP50-95 dropped {drop:.2f} points"
            for what, drop in drops(report).items()
            if drop > max_drop + 1e-9
        )
        click.echo(f"FAIL: {lost}, more than --max-drop {max_drop}.", err=True)
        sys.exit(1)


def entry():
    """The `tfyolo-eval` console script."""
    silence_native_logs()
    main()


if __name__ == "__main__":
    entry()
