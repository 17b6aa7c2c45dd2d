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

    return (
        f"| {row['recipe']} | {number('size_bytes', ',')} | {number('map50_95', '.4f')} | "
        f"{number('map50', '.4f')} | {number('delta_map50_95', '+.2f')} | "
        f"{'-' if row.get('full_integer') is None else ('yes' if row['full_integer'] else 'no')} | "
        f"{number('latency_ms_p50', '.2f')} | {row.get('error') or row.get('note') or ''} |"
    )


def markdown_report(report):
    lines = [
        f"# Conversion report: `{report['model']}`",
        "",
        f"Evaluation: {report['data']} ({report['num_images']} images); calibration: "
        f"{report['calibration']['source'] if report['calibration'] else 'none'} "
        f"({report['calibration']['images_used'] if report['calibration'] else 0} images).",
        "",
        "Latency: LiteRT interpreter, XNNPACK, 2 threads, p50 of invoke().",
        "",
        "| recipe | size (bytes) | mAP50-95 | mAP50 | delta mAP50-95 (points) | full integer | latency p50 ms | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [_format_row(row) for row in report["rows"]]
    return "\n".join(lines) + "\n"


QAT_RECIPES = ("int8", "int8_int8io")


def run_conversions(
    model, recipes, calibration, data_yaml, split, out, name, threads, force_overlap, evaluate, qat_model=None
):
    """Converts `model` with every recipe into `out`; returns the report dict (also written as report.json/md).

    qat_model: an optional QAT .keras of the same detector; it is converted with the int8 recipes into
    `<name>_qat_<recipe>.tflite` rows, evaluated against the same float reference.
    """
    from tfyolo.benchmark import benchmark_tflite
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.evaluation.model_evaluation import ReferenceRun, evaluate_model
    from tfyolo.evaluation.runners import KerasRunner, TFLiteRunner
    from tfyolo.io_utils import atomic_write_bytes, atomic_write_json, atomic_write_text
    from tfyolo.metadata import embed_metadata, find_model_metadata
    from tfyolo.models.model_io import load_any_detector
    from tfyolo.quantization.artifact import artifact_metadata, artifact_stem
    from tfyolo.quantization.calibration import load_calibration_images
    from tfyolo.quantization.isolated import check_artifact, convert_isolated
    from tfyolo.quantization.recipes_dir import DEFAULT_CALIBRATION

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model_metadata = find_model_metadata(model)
    float_model = load_any_detector(model)
    float_runner = KerasRunner(float_model, description=str(model))
    stem = artifact_stem(model, name)
    dataset = None
    if evaluate:
        from tfyolo.cli.evaluate import resolve_data

        dataset = DetectionDataset.from_data_yaml(resolve_data(data_yaml, model), split)
    calibration_source = calibration or DEFAULT_CALIBRATION
    calibration_cache, calibration_summary = {}, None
    report = {
        "model": str(model),
        "data": dataset.description if dataset else None,
        "num_images": len(dataset) if dataset else 0,
        "calibration": None,
        "rows": [],
    }

    reference = None
    if dataset is not None:
        with progress_bar(len(dataset), "float model") as bar:
            reference = ReferenceRun(float_runner, dataset, progress=bar.update)
        metrics = reference.evaluation.metrics
        report["rows"].append(
            {
                "recipe": "float",
                "path": str(model),
                "size_bytes": Path(model).stat().st_size,
                "map50_95": metrics["map50_95"],
                "map50": metrics["map50"],
                "delta_map50_95": 0.0,
                "full_integer": False,
                "latency_ms_p50": None,
                "error": None,
                "note": "Keras float32 reference",
            }
        )

    jobs = [(model, recipe, recipe.name, False) for recipe in recipes]
    if qat_model:
        from tfyolo.quantization.recipes_dir import resolve_recipe

        jobs += [(qat_model, resolve_recipe(r), f"qat_{r}", True) for r in QAT_RECIPES]
    for position, (source, recipe, row_name, is_qat) in enumerate(jobs, start=1):
        click.echo(
            f"[{position}/{len(jobs)}] {row_name}: {recipe.description}"
            + (" (QAT model: no calibration needed, its ranges were learned)" if is_qat else ""),
            err=True,
        )
        row = {
            "recipe": row_name,
            "path": None,
            "size_bytes": None,
            "map50_95": None,
            "map50": None,
            "delta_map50_95": None,
            "full_integer": None,
            "latency_ms_p50": None,
            "error": None,
            "note": INT16_NOTE if recipe.mode == "int16x8" else None,
        }
        try:
            images = None
            if recipe.needs_calibration and not is_qat:
                key = (recipe.calibration_images, recipe.calibration_seed)
                if key not in calibration_cache:
                    evaluated = [s.image_path for s in dataset.samples] if dataset else []
                    calibration_cache[key] = load_calibration_images(
                        calibration_source,
                        float_runner.input_size,
                        recipe.calibration_images,
                        recipe.calibration_seed,
                        evaluated,
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
            staged = is_qat and bool((find_model_metadata(source) or {}).get("qat_staged"))
            inspection = check_artifact(content, recipe, allow_float=staged)
            row["full_integer"] = inspection["full_integer"]
            row["ops"] = inspection["ops"]
            row["tensor_types"] = inspection["tensor_types"]
            metadata = artifact_metadata(
                model_metadata,
                recipe,
                calibration_summary if images is not None else None,
                float_runner.input_size,
                float_runner.num_classes,
                source,
            )
            metadata["qat"] = is_qat
            content = embed_metadata(content, metadata)
            path = out / f"{stem}_{row_name}.tflite"
            atomic_write_bytes(path, content)
            row["path"], row["size_bytes"] = str(path), len(content)
            row.update(
                {
                    key: value
                    for key, value in benchmark_tflite(
                        content,
                        num_threads=threads,
                        warmup=3 if recipe.mode == "int16x8" else 10,
                        runs=10 if recipe.mode == "int16x8" else 50,
                    ).items()
                    if key.startswith("latency")
                }
            )
            if reference is not None:
                runner = TFLiteRunner(path, num_threads=threads)
                with progress_bar(len(dataset), f"evaluating {recipe.name}") as bar:
                    result, _, _ = evaluate_model(runner, dataset, "val", reference=reference, progress=bar.update)
                row.update(
                    map50_95=result["map50_95"],
                    map50=result["map50"],
                    delta_map50_95=result["delta_map50_95"],
                    output_errors=result["output_errors"],
                    detection_agreement=result["detection_agreement"]["agreement"],
                )
            click.echo("    " + _format_row(row), err=True)
        except TfyoloError as error:
            row["error"] = str(error)
            click.echo(f"    FAILED: {error}", err=True)
        report["rows"].append(row)

    fp32 = next((row for row in report["rows"] if row["recipe"] == "fp32" and row["size_bytes"]), None)
    for row in report["rows"]:
        if fp32 and row["size_bytes"] and row["recipe"] != "float":
            row["size_ratio_vs_fp32"] = row["size_bytes"] / fp32["size_bytes"]
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", markdown_report(report))
    return report


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
    help="Image folder or data.yaml (its train split) [default: calibration_data/].",
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
    type=click.Path(dir_okay=False),
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
    if qat_model and not Path(qat_model).is_file():
        qat_model = None  # `make convert` passes the default QAT path whether or not `make qat` ran
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
