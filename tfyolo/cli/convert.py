"""`tfyolo convert`: convert a model with recipes, check each artifact, evaluate it against the float model."""

import time
from pathlib import Path

import click

from tfyolo.cli.common import progress_bar, user_errors
from tfyolo.errors import TfyoloError

INT16_NOTE = "int16x8 runs on reference kernels only (no XNNPACK): about 30x slower than int8 on CPUs"


def _format_row(row):
    def number(key, fmt):
        return "-" if row.get(key) is None else format(row[key], fmt)

    note = (row.get("error") or row.get("note") or "") + (
        " (from an earlier run into this folder)" if row.get("earlier_run") else ""
    )
    return (
        f"| {row['recipe']} | {number('size_bytes', ',')} | {number('map50_95', '.4f')} | "
        f"{number('map50', '.4f')} | {number('delta_map50_95', '+.2f')} | "
        f"{'-' if row.get('full_integer') is None else ('yes' if row['full_integer'] else 'no')} | "
        f"{number('latency_ms_p50', '.2f')} | {number('latency_ratio_vs_fp32', '.2f')} | "
        f"{note} |"
    )


def markdown_report(report):
    latency = report.get("latency") or {}
    load = latency.get("load_average") or [None, None]
    load_text = "n/a" if load[0] is None else f"{load[0]:.2f} before, {load[1]:.2f} after"
    lines = [
        f"# Conversion report: `{report['model']}`",
        "",
        f"Evaluation: {report['data']} ({report['num_images']} images); calibration: "
        f"{report['calibration']['source'] if report['calibration'] else 'none'} "
        f"({report['calibration']['images_used'] if report['calibration'] else 0} images).",
        "",
        f"Latency: LiteRT interpreter, XNNPACK, {latency.get('threads', '-')} threads, p50 of invoke(), every "
        f"artifact timed in one run, interleaved ({latency.get('rounds', '-')} rounds); load average {load_text}.",
        "",
        "| recipe | size (bytes) | mAP50-95 | mAP50 | delta mAP50-95 (points) | full integer | latency p50 ms | "
        "latency / fp32 | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_format_row(row) for row in report["rows"]]
    return "\n".join(lines) + "\n"


QAT_RECIPES = ("int8", "int8_int8io")


def _empty_row(name, note=None):
    return {
        "recipe": name,
        "path": None,
        "size_bytes": None,
        "map50_95": None,
        "map50": None,
        "delta_map50_95": None,
        "full_integer": None,
        "latency_ms_p50": None,
        "error": None,
        "note": note,
    }


def run_conversions(
    model, recipes, calibration, data_yaml, split, out, name, threads, force_overlap, evaluate, qat_model=None
):
    """Converts `model` with every recipe into `out`; returns the report dict (also written as report.json/md).

    Every artifact is converted and checked first, then all are evaluated against the float model in one
    lockstep pass, then timed together, interleaved. qat_model: an optional QAT model of the same detector; it is
    converted with the int8 recipes into `<name>_qat_<recipe>.tflite` rows against the same float reference.
    """
    from tfyolo.benchmark import interleaved_latency
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.evaluation.model_evaluation import evaluate_models
    from tfyolo.evaluation.runners import KerasRunner, TFLiteRunner
    from tfyolo.io_utils import atomic_write_bytes, atomic_write_json, atomic_write_text, ensure_writable_folder, locked
    from tfyolo.metadata import find_model_metadata, resolve_data
    from tfyolo.models.model_io import load_any_detector
    from tfyolo.quantization.artifact import artifact_metadata, artifact_stem, finalize_artifact
    from tfyolo.quantization.calibration import (
        default_calibration_source,
        evaluation_image_paths,
        load_calibration_images,
    )
    from tfyolo.quantization.isolated import convert_isolated
    from tfyolo.quantization.recipes_dir import resolve_recipe

    out = ensure_writable_folder(out)
    model_metadata = find_model_metadata(model)
    float_runner = KerasRunner(load_any_detector(model), description=str(model))
    stem = artifact_stem(model, name)
    data = resolve_data(data_yaml, model, required=evaluate)
    dataset = DetectionDataset.from_data_yaml(data, split) if evaluate else None
    # The overlap check runs with --no-eval too: the images the artifact will be judged on are known either way.
    evaluated_images = [s.image_path for s in dataset.samples] if dataset else evaluation_image_paths(data, split)
    if calibration is None and any(recipe.needs_calibration for recipe in recipes):
        calibration, why = default_calibration_source(model, model_metadata)
        click.echo(f"calibration: {why}", err=True)
    calibration_cache, calibration_summary = {}, None
    report = {
        "model": str(model),
        "data": dataset.description if dataset else None,
        "num_images": len(dataset) if dataset else 0,
        "calibration": None,
        "rows": [],
        "latency": None,
    }

    jobs = [(model, recipe, recipe.name, False) for recipe in recipes]
    if qat_model:
        jobs += [(qat_model, resolve_recipe(r), f"qat_{r}", True) for r in QAT_RECIPES]
    artifacts = {}
    for position, (source, recipe, row_name, is_qat) in enumerate(jobs, start=1):
        click.echo(
            f"[{position}/{len(jobs)}] {row_name}: {recipe.description}"
            + (" (QAT model: no calibration needed, its ranges were learned)" if is_qat else ""),
            err=True,
        )
        row = _empty_row(row_name, INT16_NOTE if recipe.mode == "int16x8" else None)
        try:
            images = None
            if recipe.needs_calibration and not is_qat:
                key = (recipe.calibration_images, recipe.calibration_seed)
                if key not in calibration_cache:
                    calibration_cache[key] = load_calibration_images(
                        calibration,
                        float_runner.input_size,
                        recipe.calibration_images,
                        recipe.calibration_seed,
                        evaluated_images,
                        force_overlap,
                    )
                    click.echo(
                        f"    calibrating with {calibration_cache[key][1]['images_used']} images from "
                        f"{calibration_cache[key][1]['source']}",
                        err=True,
                    )
                images, calibration_summary = calibration_cache[key]
                report["calibration"] = calibration_summary
            started = time.perf_counter()
            content = convert_isolated(source, recipe, images)
            row["convert_seconds"] = time.perf_counter() - started
            metadata = artifact_metadata(
                model_metadata,
                recipe,
                calibration_summary if images is not None else None,
                float_runner.input_size,
                float_runner.num_classes,
                source,
            )
            metadata["qat"] = is_qat
            staged = is_qat and bool((find_model_metadata(source) or {}).get("qat_staged"))
            content, inspection = finalize_artifact(content, recipe, metadata, allow_float=staged)
            row.update(full_integer=inspection["full_integer"], ops=inspection["ops"])
            row["tensor_types"] = inspection["tensor_types"]
            path = out / f"{stem}_{row_name}.tflite"
            atomic_write_bytes(path, content)
            row["path"], row["size_bytes"] = str(path), len(content)
            artifacts[row_name] = content
            click.echo(f"    wrote {path} ({len(content):,} bytes) in {row['convert_seconds']:.1f} s", err=True)
        except TfyoloError as error:
            row["error"] = str(error)
            click.echo(f"    FAILED: {error}", err=True)
        report["rows"].append(row)
    rows = {row["recipe"]: row for row in report["rows"]}

    if dataset is not None:
        runners = {
            row_name: TFLiteRunner(model_content=content, num_threads=threads)
            for row_name, content in artifacts.items()
        }
        with progress_bar(len(dataset), f"evaluating float + {len(runners)} artifact(s)") as bar:
            results, _, reference = evaluate_models(runners, dataset, split, float_runner, progress=bar.update)
        report["rows"].insert(0, _float_row(model, reference.metrics))
        for row_name, result in results.items():
            rows[row_name].update(
                map50_95=result["map50_95"],
                map50=result["map50"],
                delta_map50_95=result["delta_map50_95"],
                output_errors=result["output_errors"],
                detection_agreement=result["detection_agreement"]["agreement"],
            )

    if artifacts:
        rounds = 15
        with progress_bar(rounds, "timing (interleaved)") as bar:
            latency = interleaved_latency(artifacts, num_threads=threads, rounds=rounds, progress=bar.update)
        report["latency"] = {key: value for key, value in latency.items() if key != "models"}
        fp32 = latency["models"].get("fp32")
        for row_name, stats in latency["models"].items():
            rows[row_name]["latency_ms_p50"] = stats["latency_ms_p50"]
            rows[row_name]["latency_runs"] = stats["runs"]
            if fp32:
                rows[row_name]["latency_ratio_vs_fp32"] = stats["latency_ms_p50"] / fp32["latency_ms_p50"]
        fp32_size = rows.get("fp32", {}).get("size_bytes")
        for row_name in artifacts:
            if fp32_size:
                rows[row_name]["size_ratio_vs_fp32"] = rows[row_name]["size_bytes"] / fp32_size
    for row in report["rows"]:
        click.echo("    " + _format_row(row), err=True)
    with locked(out / ".report.lock"):
        merged = merge_reports(out / "report.json", report)
        atomic_write_json(out / "report.json", merged)
        atomic_write_text(out / "report.md", markdown_report(merged))
    return report


def merge_reports(path, report):
    """`report` merged into the one already at `path`: two runs into the same folder (one after the other, or at
    once: the caller holds the folder's lock) keep each other's rows; a row is replaced only by the same recipe.
    A row kept from an earlier run is marked, since its latency was timed in another run."""
    import json

    try:
        previous = json.loads(Path(path).read_text()) if Path(path).is_file() else None
    except ValueError:
        previous = None
    if not previous or previous.get("model") != report["model"]:
        return report
    fresh = {row["recipe"] for row in report["rows"]}
    kept = []
    for row in previous.get("rows", []):
        if row["recipe"] not in fresh:
            kept.append(dict(row, earlier_run=True))
    return dict(report, rows=report["rows"] + kept)


def _float_row(model, metrics):
    return dict(
        _empty_row("float", "Keras float32 reference"),
        path=str(model),
        size_bytes=Path(model).stat().st_size,
        map50_95=metrics["map50_95"],
        map50=metrics["map50"],
        delta_map50_95=0.0,
        full_integer=False,
    )


@click.command("convert")
@click.option("--model", required=True, type=click.Path(exists=True, dir_okay=False), help="Float or QAT .keras.")
@click.option(
    "--recipe",
    "recipe_names",
    multiple=True,
    help="Built-in recipe name or recipe .yaml; repeat for several [default: every built-in recipe].",
)
@click.option(
    "--calibration",
    type=click.Path(exists=True),
    help="Image folder or data.yaml (its train split) [default: the train split of the model's dataset; "
    "calibration_data/ for a model that names none].",
)
@click.option("--data", "data_yaml", type=click.Path(), help="Evaluation data [default: the model's metadata].")
@click.option("--split", default="val", show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--name", default=None, help="Artifact prefix [default: the model's name].")
@click.option("--threads", default=2, show_default=True)
@click.option("--no-eval", is_flag=True, help="Only convert and check; no mAP.")
@click.option("--force-calibration-overlap", is_flag=True, help="Allow calibrating on evaluated images.")
@click.option(
    "--qat-model",
    type=click.Path(exists=True, dir_okay=False),
    help="Also convert this QAT model of the same detector (rows qat_int8, qat_int8_int8io).",
)
@click.option("--auto", is_flag=True, help="Search the fastest recipe whose mAP50-95 drop stays within --max-drop.")
@click.option("--max-drop", type=float, default=0.5, show_default=True, help="mAP50-95 budget in points (--auto).")
@click.option(
    "--prefer",
    type=click.Choice(["int8", "latency", "size"]),
    default="int8",
    show_default=True,
    help="--auto: stop at the first candidate within budget (int8), or the fastest / smallest of all.",
)
@user_errors
def convert_command(
    model,
    recipe_names,
    calibration,
    data_yaml,
    split,
    out,
    name,
    threads,
    no_eval,
    force_calibration_overlap,
    qat_model,
    auto,
    max_drop,
    prefer,
):
    """Convert MODEL to TFLite with each recipe, verify it, and report accuracy against the float model."""
    from tfyolo.quantization.recipes_dir import builtin_recipe_names, resolve_recipe

    if auto:
        from tfyolo.cli.auto import auto_command_body

        return auto_command_body(
            model, calibration, data_yaml, split, out, threads, force_calibration_overlap, max_drop, prefer
        )

    recipes = [resolve_recipe(value) for value in (recipe_names or builtin_recipe_names())]
    report = run_conversions(
        model,
        recipes,
        calibration,
        data_yaml,
        split,
        out,
        name,
        threads,
        force_calibration_overlap,
        not no_eval,
        qat_model=qat_model,
    )
    click.echo("\n" + markdown_report(report))
    click.echo(f"Wrote {Path(out) / 'report.json'} and {Path(out) / 'report.md'}")
    failed = [row["recipe"] for row in report["rows"] if row.get("error")]
    if failed:
        raise click.ClickException(f"recipe(s) failed: {failed}; see the report.")
