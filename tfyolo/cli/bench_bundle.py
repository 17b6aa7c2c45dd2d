"""`tfyolo bench` (LiteRT latency) and `tfyolo bundle` (the edge handoff folder)."""

import json
import zipfile
from pathlib import Path

import click

from tfyolo.cli.common import AT_LEAST_ONE, NON_NEGATIVE, check_tflite_in_child, user_errors, verify_and_report
from tfyolo.cli.target import npu_options, npu_targets


def _thread_counts(context, parameter, value):
    """ "1,2" -> [1, 2]; anything else is a usage error."""
    try:
        counts = [int(item) for item in str(value).split(",") if item.strip()]
    except ValueError:
        counts = []
    if not counts or any(not 1 <= count <= 64 for count in counts):
        raise click.BadParameter(f"expected comma-separated thread counts from 1 to 64, received {value!r}.")
    return counts


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--threads", default="1,2", show_default=True, callback=_thread_counts, help="Comma-separated thread counts."
)
@click.option("--warmup", default=10, show_default=True, type=NON_NEGATIVE)
@click.option("--runs", default=100, show_default=True, type=AT_LEAST_ONE)
@click.option("--no-xnnpack", is_flag=True, help="Builtin kernels only (no default delegate).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False))
@click.option("--report", "report_dir", type=click.Path(file_okay=False), help="Write latency.png there.")
@user_errors
def bench_command(models, threads, warmup, runs, no_xnnpack, json_path, report_dir):
    """Latency of .tflite MODELS with the LiteRT interpreter, side by side, with ratios against the first."""
    from tfyolo.benchmark import benchmark_models
    from tfyolo.io_utils import atomic_write_json
    from tfyolo.plots import plot_latency

    counts = threads
    for model in models:
        check_tflite_in_child(model)
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
@click.option("--golden", default=3, show_default=True, type=AT_LEAST_ONE, help="Number of golden vectors.")
@click.option("--eval-json", type=click.Path(exists=True, dir_okay=False), help="tfyolo-eval --json to include.")
@click.option("--bench-json", type=click.Path(exists=True, dir_okay=False), help="tfyolo bench --json to include.")
@npu_options
@click.option("--mcu", is_flag=True, help="Run the golden inputs in TFLite Micro; its parity and arena go in too.")
@click.option("--verify", is_flag=True, help="Verify the bundle folder TARGET instead of making one.")
@user_errors
def bundle_command(
    target, out, make_zip, image_source, golden, eval_json, bench_json, npus, system_config, memory_mode, mcu, verify
):
    """Write the edge handoff bundle of TARGET (.tflite), or --verify a bundle folder."""
    from tfyolo.bundle import golden_image_paths, make_bundle, write_bundle
    from tfyolo.io_utils import ensure_writable_folder

    if verify:
        return verify_and_report(target)
    if not out:
        raise click.UsageError("--out is required to make a bundle.")
    out = Path(out)
    ensure_writable_folder(out.parent, "--out (its parent folder)")
    check_tflite_in_child(target, mcu)
    images = golden_image_paths(target, image_source, golden)
    evaluation = json.loads(Path(eval_json).read_text()) if eval_json else None
    latency = json.loads(Path(bench_json).read_text()) if bench_json else None
    targets = npu_targets(npus, system_config, memory_mode)
    files = make_bundle(target, images, evaluation=evaluation, latency=latency, npu_targets=targets, mcu=mcu)
    write_bundle(out, files)
    click.echo(f"Wrote {len(files)} files to {out}")
    manifest = json.loads(files["manifest.json"])
    if manifest["targets"]:
        from tfyolo.targets.target_check import targets_markdown

        click.echo(targets_markdown(manifest["targets"]))
        if mcu and not manifest["targets"]["mcu"]["parity"]:
            raise click.ClickException(f"{out}: written, but TFLite Micro's outputs do not match LiteRT's.")
    if make_zip:
        archive_path = out.with_suffix(".zip")
        from tfyolo.io_utils import atomic_path

        with atomic_path(archive_path) as temporary, zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            for relative in sorted(files):
                archive.write(out / relative, f"{out.name}/{relative}")
        click.echo(f"Wrote {archive_path}")
