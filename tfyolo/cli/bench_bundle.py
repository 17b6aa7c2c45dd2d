"""`tfyolo bench` (LiteRT latency) and `tfyolo bundle` (the edge handoff folder)."""

import json
import zipfile
from pathlib import Path

import click

from tfyolo.cli.common import user_errors, verify_and_report
from tfyolo.errors import ModelError


def benchmark_models(paths, threads, warmup, runs, xnnpack=True):
    """Library: {"models": [{"path", "size_bytes", "ops", "tensor_types", "runs": [per-thread stats]}]}."""
    from tfyolo.benchmark import benchmark_tflite
    from tfyolo.quantization.tflite_inspect import inspect_tflite

    models = []
    for path in paths:
        content = Path(path).read_bytes()
        try:
            inspection = inspect_tflite(content)
        except (ValueError, RuntimeError) as error:
            raise ModelError(f"{path}: not a valid TFLite model ({str(error).splitlines()[0]}).")
        entry = {
            "path": str(path),
            "detector": _detector_summary(content),
            "size_bytes": len(content),
            "ops": inspection["ops"],
            "tensor_types": inspection["tensor_types"],
            "float_compute_ops": len(inspection["float_compute_ops"]),
            "runs": [],
        }
        for count in threads:
            entry["runs"].append(
                benchmark_tflite(content, num_threads=count, warmup=warmup, runs=runs, xnnpack=xnnpack)
            )
        models.append(entry)
    first = models[0]
    for entry in models:
        for run, base in zip(entry["runs"], first["runs"]):
            run["ratio_vs_first"] = run["latency_ms_p50"] / base["latency_ms_p50"]
    return {"models": models, "threads": list(threads), "warmup": warmup, "runs": runs, "xnnpack": xnnpack}


def _detector_summary(content):
    """What the model detects (layout, input, classes, reg_max), read the way the evaluator reads it; None for a
    .tflite that is not a detector (it is still timed)."""
    from tfyolo.evaluation.runners import TFLiteRunner

    try:
        runner = TFLiteRunner(model_content=content, num_threads=1)
    except ModelError:
        return None
    return {
        "layout": runner.layout,
        "input_size": runner.input_size,
        "input_layout": "NCHW" if runner.channels_first else "NHWC",
        "num_classes": runner.num_classes,
        "reg_max": runner.reg_max,
    }


def plot_latency(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(len(results["threads"]), 1)
    labels = [Path(model["path"]).stem for model in results["models"]]
    for offset, count in enumerate(results["threads"]):
        values = [model["runs"][offset]["latency_ms_p50"] for model in results["models"]]
        axis.bar([i + offset * width for i in range(len(labels))], values, width, label=f"{count} thread(s)")
    axis.set_xticks([i + width * (len(results["threads"]) - 1) / 2 for i in range(len(labels))])
    axis.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
    axis.set(ylabel="p50 latency (ms)", title="LiteRT latency (XNNPACK)" if results["xnnpack"] else "LiteRT latency")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--threads", default="1,2", show_default=True, help="Comma-separated thread counts.")
@click.option("--warmup", default=10, show_default=True)
@click.option("--runs", default=100, show_default=True)
@click.option("--no-xnnpack", is_flag=True, help="Builtin kernels only (no default delegate).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False))
@click.option("--report", "report_dir", type=click.Path(file_okay=False), help="Write latency.png there.")
@user_errors
def bench_command(models, threads, warmup, runs, no_xnnpack, json_path, report_dir):
    """Latency of .tflite MODELS with the LiteRT interpreter, side by side, with ratios against the first."""
    from tfyolo.io_utils import atomic_write_json

    counts = [int(value) for value in threads.split(",") if value.strip()]
    results = benchmark_models(models, counts, warmup, runs, xnnpack=not no_xnnpack)
    header = f"{'model':<34}{'size MB':>9}" + "".join(f"{f'p50 ms t={c}':>14}{'ratio':>7}" for c in counts)
    click.echo(header)
    for model in results["models"]:
        line = f"{Path(model['path']).name[:33]:<34}{model['size_bytes'] / 2**20:>9.2f}"
        for run in model["runs"]:
            line += f"{run['latency_ms_p50']:>14.2f}{run['ratio_vs_first']:>7.2f}"
        click.echo(line)
    peak = max(run["peak_rss_mb"] or 0 for model in results["models"] for run in model["runs"])
    click.echo(f"\npeak resident memory of this process: {peak:.0f} MB; p90/p99/mean and op counts in --json")
    if json_path:
        atomic_write_json(json_path, results)
    if report_dir:
        Path(report_dir).mkdir(parents=True, exist_ok=True)
        plot_latency(results, Path(report_dir) / "latency.png")


@click.command("bundle")
@click.argument("target", type=click.Path(exists=True))
@click.option("--out", type=click.Path(file_okay=False), help="Bundle folder to write.")
@click.option("--zip", "make_zip", is_flag=True, help="Also write OUT.zip.")
@click.option(
    "--images",
    "image_source",
    type=click.Path(exists=True),
    help="Images for the golden vectors (folder or data.yaml) [default: the model's val data, else calibration_data/].",
)
@click.option("--golden", default=3, show_default=True, help="Number of golden vectors.")
@click.option("--eval-json", type=click.Path(exists=True, dir_okay=False), help="tfyolo-eval --json to include.")
@click.option("--bench-json", type=click.Path(exists=True, dir_okay=False), help="tfyolo bench --json to include.")
@click.option("--verify", is_flag=True, help="Verify the bundle folder TARGET instead of making one.")
@user_errors
def bundle_command(target, out, make_zip, image_source, golden, eval_json, bench_json, verify):
    """Write the edge handoff bundle of TARGET (.tflite), or --verify a bundle folder."""
    from tfyolo.bundle import make_bundle, write_bundle
    from tfyolo.io_utils import ensure_writable_folder

    if verify:
        return verify_and_report(target)
    if not out:
        raise click.UsageError("--out is required to make a bundle.")
    out = Path(out)
    ensure_writable_folder(out.parent, "--out (its parent folder)")
    images = golden_image_paths(target, image_source, golden)
    evaluation = json.loads(Path(eval_json).read_text()) if eval_json else None
    latency = json.loads(Path(bench_json).read_text()) if bench_json else None
    files = make_bundle(target, images, evaluation=evaluation, latency=latency)
    write_bundle(out, files)
    click.echo(f"Wrote {len(files)} files to {out}")
    if make_zip:
        archive_path = out.with_suffix(".zip")
        from tfyolo.io_utils import atomic_path

        with atomic_path(archive_path) as temporary, zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            for relative in sorted(files):
                archive.write(out / relative, f"{out.name}/{relative}")
        click.echo(f"Wrote {archive_path}")


def golden_image_paths(model_path, image_source, count):
    from tfyolo.metadata import find_model_metadata
    from tfyolo.quantization.calibration import calibration_paths
    from tfyolo.quantization.recipes_dir import DEFAULT_CALIBRATION

    if image_source is None:
        metadata = find_model_metadata(model_path) or {}
        data = metadata.get("data")
        if data and Path(data).is_file():
            from tfyolo.data.detection_dataset import DetectionDataset

            dataset = DetectionDataset.from_data_yaml(data, "val")
            return [sample.image_path for sample in dataset.samples[:count]]
        image_source = DEFAULT_CALIBRATION
    paths, _ = calibration_paths(image_source)
    return paths[:count]
