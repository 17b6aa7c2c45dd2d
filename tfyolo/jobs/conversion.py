"""A convert job: every recipe made into a checked artifact, then all artifacts scored against the float model and
timed together (`tfyolo.jobs.artifact_pipeline`, the path every artifact takes)."""

import json
from pathlib import Path

from tfyolo.data.calibration_images import (
    evaluation_image_paths,
    load_calibration_images,
    refuse_training_overlap,
)
from tfyolo.data.detection_dataset import DetectionDataset
from tfyolo.errors import TfyoloError
from tfyolo.evaluation.model_evaluation import task_columns
from tfyolo.io_utils import atomic_write_bytes
from tfyolo.jobs.artifact_pipeline import FloatModel, make_artifact, score_artifacts
from tfyolo.jobs.compression_pipeline import fine_tune_for
from tfyolo.jobs.model_runner import keras_runner
from tfyolo.jobs.report import INT16_NOTE, format_row
from tfyolo.metadata import find_model_metadata, resolve_data
from tfyolo.quantization.artifact import artifact_stem
from tfyolo.quantization.calibration import default_calibration_source
from tfyolo.quantization.recipes_dir import default_recipe_names, resolve_recipe

# A QAT model's rows and the recipes that make them: TFLiteConverter, the converter that reads the ranges QAT learned
# (its fake-quant ops); ai-edge-quantizer would calibrate them anew.
QAT_RECIPES = {"qat_int8": "int8_tflite", "qat_int8_int8io": "int8_tflite_int8io"}


def empty_row(name, note=None):
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


def float_row(model, metrics):
    return dict(
        empty_row("float", "Keras float32 reference"),
        path=str(model),
        size_bytes=Path(model).stat().st_size,
        map50_95=metrics["map50_95"],
        map50=metrics["map50"],
        delta_map50_95=0.0,
        **task_columns(metrics, metrics),
        full_integer=False,
        pr_curves=metrics.get("pr_curves"),
    )


def convert_recipes(spec, out, progress):
    """Runs a convert job's recipes into folder `out`; returns (report dict, {row name: artifact bytes})."""
    recipes = [resolve_recipe(value) for value in (spec.recipes or default_recipe_names())]
    model_metadata = find_model_metadata(spec.model)
    progress.stage(f"loading {Path(spec.model).name}", 1, unit="model")
    float_runner = keras_runner(spec.model, metadata=model_metadata)
    progress.advance()
    progress.end_stage()
    stem = artifact_stem(spec.model, spec.name)
    float_model = FloatModel(str(spec.model), model_metadata, float_runner.input_size, float_runner.num_classes)
    data = resolve_data(spec.data, spec.model, required=spec.evaluate)
    dataset = DetectionDataset.from_data_yaml(data, spec.split) if spec.evaluate else None
    # The overlap check runs without evaluation too: the images the artifact will be judged on are known either way.
    evaluated_images = [s.image_path for s in dataset.samples] if dataset else evaluation_image_paths(data, spec.split)
    calibration = spec.calibration
    if calibration is None and any(recipe.needs_calibration for recipe in recipes):
        calibration, why = default_calibration_source(spec.model, model_metadata, data)
        progress.message(f"calibration: {why}")
    calibration_cache, calibration_summary = {}, None
    report = {
        "model": str(spec.model),
        "data": dataset.description if dataset else None,
        "num_images": len(dataset) if dataset else 0,
        "calibration": None,
        "rows": [],
        "latency": None,
    }
    work = [(spec.model, recipe, recipe.name, False) for recipe in recipes]
    if spec.qat_model:
        work += [(spec.qat_model, resolve_recipe(recipe), row, True) for row, recipe in QAT_RECIPES.items()]
    artifacts, converted = {}, {}
    for position, (source, recipe, row_name, is_qat) in enumerate(work, start=1):
        progress.message(
            f"[{position}/{len(work)}] {row_name}: {recipe.description}"
            + (" (QAT model: no calibration needed, its ranges were learned)" if is_qat else "")
        )
        row = empty_row(row_name, INT16_NOTE if recipe.mode == "int16x8" else None)
        converting, started = f"converting {row_name} ({position}/{len(work)})", False
        try:
            if recipe.trains:
                # cluster_int8 / prune_int8: the artifact is int8 of the QAT model its training stages make.
                trained_on = (model_metadata or {}).get("data") or data
                if trained_on and Path(trained_on).is_file():
                    refuse_training_overlap(
                        trained_on, evaluated_images, spec.force_training_overlap, f"recipe {recipe.name!r}"
                    )
                source = fine_tune_for(recipe, spec.model, trained_on, float_runner.input_size, out, progress)
                is_qat = True
            progress.stage(converting, 1, unit="recipe")
            started = True
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
                        spec.force_calibration_overlap,
                    )
                    summary = calibration_cache[key][1]
                    progress.message(f"    calibrating with {summary['images_used']} images from {summary['source']}")
                images, calibration_summary = calibration_cache[key]
                report["calibration"] = calibration_summary
            content, facts = make_artifact(
                float_model,
                recipe,
                source,
                images,
                calibration_summary if images is not None else None,
                is_qat,
                converted,
            )
            row.update(facts)
            path = Path(out) / f"{stem}_{row_name}.tflite"
            atomic_write_bytes(path, content)
            row["path"], row["size_bytes"] = str(path), len(content)
            artifacts[row_name] = content
            progress.message(f"    wrote {path} ({len(content):,} bytes) in {row['convert_seconds']:.1f} s")
        except TfyoloError as error:
            row["error"] = str(error)
            progress.message(f"    FAILED: {error}")
            if not started:  # failed in its training stages, before its conversion began
                progress.stage(converting, 1, unit="recipe")
        progress.advance()
        progress.end_stage()
        report["rows"].append(row)
    rows = {row["recipe"]: row for row in report["rows"]}

    scored, reference_metrics, report["latency"] = score_artifacts(
        artifacts, dataset, spec.split, float_runner, spec.threads, progress
    )
    for name, fields in scored.items():
        rows[name].update(fields)
    if reference_metrics is not None:
        report["rows"].insert(0, float_row(spec.model, reference_metrics))
    fp32 = rows.get("fp32", {})
    for name in artifacts:
        if fp32.get("latency_ms_p50") and rows[name].get("latency_ms_p50"):
            rows[name]["latency_ratio_vs_fp32"] = rows[name]["latency_ms_p50"] / fp32["latency_ms_p50"]
        if fp32.get("size_bytes"):
            rows[name]["size_ratio_vs_fp32"] = rows[name]["size_bytes"] / fp32["size_bytes"]
    for row in report["rows"]:
        progress.message("    " + format_row(row))
    return report, artifacts


def merge_reports(path, report):
    """`report` merged into the one already at `path`: two runs into the same folder (one after the other, or at
    once: the caller holds the folder's lock) keep each other's rows; a row is replaced only by the same recipe.
    A row kept from an earlier run is marked, since its latency was timed in another run."""
    try:
        previous = json.loads(Path(path).read_text()) if Path(path).is_file() else None
    except ValueError:
        previous = None
    if not previous or previous.get("model") != report["model"]:
        return report
    fresh = {row["recipe"] for row in report["rows"]}
    kept = [dict(row, earlier_run=True) for row in previous.get("rows", []) if row["recipe"] not in fresh]
    return dict(report, rows=report["rows"] + kept)
