"""`run_job`: the one entry point that runs a `JobSpec` and returns its `JobReport`. The CLI, the Makefile, the
benchmarks and the service's workers all call it."""

import dataclasses
import re
import zipfile
from pathlib import Path

from tfyolo.benchmark import benchmark_models
from tfyolo.bundle import golden_image_paths, make_bundle, write_bundle
from tfyolo.data.detection_dataset import DetectionDataset
from tfyolo.errors import ConfigError, DataError, ModelError
from tfyolo.evaluation.model_evaluation import drop_exceeds, evaluate_model, reference_verifies_nothing, task_columns
from tfyolo.evaluation.runners import TFLiteRunner
from tfyolo.importers.import_cache import IMPORTED_FOLDER, describe_import, imported_model, is_importable
from tfyolo.io_utils import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    ensure_writable_folder,
    locked,
    sha256_file,
)
from tfyolo.jobs.auto_session import AutoSession, run_auto
from tfyolo.jobs.conversion import convert_recipes, empty_row, float_row, merge_reports
from tfyolo.jobs.progress import Progress
from tfyolo.jobs.recommendation import recommend
from tfyolo.jobs.report import JOB_REPORT_JSON, JOB_REPORT_MD, Artifact, JobReport, Verdict, markdown_report
from tfyolo.metadata import find_model_metadata, resolve_data
from tfyolo.quantization.artifact import artifact_stem

AUTO_CALIBRATION_IMAGES = 100
GOLDEN_IMAGES = 3


def run_job(spec, out, progress=None):
    """Runs `spec` into folder `out` (job_report.json and .md, artifacts, bundle; a convert job also merges its rows
    into report.json and .md there); returns its `JobReport`."""
    progress = progress or Progress()
    if is_importable(spec.model):
        spec = _imported(spec, ensure_writable_folder(out), progress)
    if spec.kind == "convert":
        check_one_head(spec.model)
    out = ensure_writable_folder(out)
    handlers = {
        "convert": _auto if spec.is_auto else _convert,
        "evaluate": _evaluate,
        "bench": _bench,
        "bundle": _bundle_only,
    }
    report = handlers[spec.kind](spec, out, progress)
    if spec.bundle and spec.kind == "convert" and report.artifacts:
        report = _with_bundle(report, spec, out, progress)
    atomic_write_json(out / JOB_REPORT_JSON, report.to_dict())
    atomic_write_text(out / JOB_REPORT_MD, report.to_markdown())
    return report


def _imported(spec, out, progress):
    """The spec with its Ultralytics .pt / .onnx replaced by the tfyolo model imported from it (cached in `out`)."""
    progress.stage(f"importing {Path(spec.model).name}", 1, unit="model")
    path, _ = imported_model(spec.model, out / IMPORTED_FOLDER, spec.imgsz, spec.head, progress.message)
    progress.advance()
    progress.end_stage()
    metadata = find_model_metadata(path)
    progress.message(f"import: {describe_import(metadata)}")
    if spec.kind == "convert" and spec.evaluate and spec.data is None:
        # Named after the user's file, not the cache's; the import stays cached for the run with --data.
        trained_on = (metadata.get("source") or {}).get("train_data")
        named = f" (its checkpoint was trained on {trained_on!r}, a path of the machine that trained it)"
        raise DataError(
            f"{spec.model}: an Ultralytics file names no dataset on this machine{named if trained_on else ''}; "
            "pass --data DATA.yaml: its val split is scored, its train split calibrates."
        )
    # Artifacts are named after the file the user gave (best.pt -> its folder's name), not the cache's name.
    name = spec.name or re.sub(r"[^A-Za-z0-9_.+-]", "_", artifact_stem(spec.model)).lstrip("._-")[:100] or "model"
    return dataclasses.replace(spec, model=str(path), imgsz=None, head=None, name=name)


def check_one_head(model_path):
    """A converted model ends in one head, the one its metadata says its outputs are post-processed for. A model
    holding both of YOLO26's heads (`import --head both`, the training form) is refused with the two ways out."""
    from tfyolo.models.model_family import ALL_HEADS

    if str(model_path).endswith((".keras", ".h5")) and (find_model_metadata(model_path) or {}).get("head") == ALL_HEADS:
        raise ConfigError(
            f"{model_path}: holds both of its heads (one-to-one and one-to-many), the form training uses; an "
            "artifact ends in one. Convert the run's best_one2one.keras (top-k, no NMS) or best_one2many.keras "
            "(NMS), or import with --head one2one / one2many."
        )


def _artifact(name, path, kind="tflite"):
    path = Path(path)
    return Artifact(name=name, path=str(path), sha256=sha256_file(path), size_bytes=path.stat().st_size, kind=kind)


def _verdict(rows, max_drop, data=None):
    """Every evaluated artifact against the gate; rows without mAP (failed, or not evaluated) fail it too, and so does
    every row when the float reference itself detects nothing."""
    if max_drop is None:
        return Verdict(max_drop=None, passed=None)
    reference = next((row for row in rows if row["recipe"] == "float"), {})
    nothing = reference_verifies_nothing(reference.get("map50_95"), data)
    if nothing:
        return Verdict(max_drop=max_drop, passed=False, reason=nothing)
    candidates = [row for row in rows if row["recipe"] != "float"]
    if not candidates:
        return Verdict(max_drop=max_drop, passed=False, reason="no artifact was produced")
    unmeasured = [row["recipe"] for row in candidates if row.get("error") or row.get("delta_map50_95") is None]
    dropped = [row["recipe"] for row in candidates if drop_exceeds(row, max_drop)]
    reasons = [f"{', '.join(dropped)} lost more than {max_drop} points"] if dropped else []
    reasons += [f"{', '.join(unmeasured)} failed or was not evaluated"] if unmeasured else []
    failing = tuple(unmeasured + dropped)
    return Verdict(max_drop=max_drop, passed=not failing, failing=failing, reason="; ".join(reasons))


def _convert(spec, out, progress):
    report, _ = convert_recipes(spec, out, progress)
    # Recommended from this run's rows only: their latencies were timed together.
    report["recommended"] = recommend(report["rows"], spec.max_drop, micro_arena())
    # Two runs into one folder keep each other's rows (`make convert` then `make qat convert`).
    with locked(out / ".report.lock"):
        merged = merge_reports(out / "report.json", report)
        atomic_write_json(out / "report.json", merged)
        atomic_write_text(out / "report.md", markdown_report(merged))
    artifacts = tuple(
        _artifact(row["recipe"], row["path"])
        for row in report["rows"]
        if row["recipe"] != "float" and row.get("path") and not row.get("error")
    )
    return JobReport(
        kind="convert",
        model=report["model"],
        data=report["data"],
        num_images=report["num_images"],
        calibration=report["calibration"],
        rows=tuple(report["rows"]),
        artifacts=artifacts,
        latency=report["latency"],
        verdict=_verdict(report["rows"], spec.max_drop, report["data"]),
        recommended=report["recommended"],
    )


def micro_arena():
    """callable(.tflite path) -> the smallest TFLite Micro arena in bytes (a ModelError for an operator TFLite Micro
    lacks), or None where TFLite Micro is not installed."""
    from tfyolo.targets.mcu_target import missing_operators, require_tflite_micro, smallest_arena

    try:
        require_tflite_micro()
    except ConfigError:
        return None

    def arena_of(path):
        content = Path(path).read_bytes()
        missing = missing_operators(content)
        if missing:
            raise ModelError(f"{path}: TFLite Micro has no kernel for {missing}.")
        return smallest_arena(content)

    return arena_of


def _npu_target(accelerator):
    if accelerator is None:
        return None
    from tfyolo.targets.npu_target import NpuTarget, require_vela

    require_vela()
    return NpuTarget(accelerator)


def _auto(spec, out, progress):
    session = AutoSession(
        spec.model,
        spec.calibration,
        spec.data,
        spec.split,
        AUTO_CALIBRATION_IMAGES,
        spec.threads,
        spec.force_calibration_overlap,
        progress,
        qat_epochs=spec.auto_qat_epochs,
        work=out,
        npu_target=_npu_target(spec.target),
        force_training_overlap=spec.force_training_overlap,
    )
    chosen, result = run_auto(session, spec.auto_max_drop, spec.prefer, out)
    rows = [float_row(spec.model, session.reference_metrics)]
    rows += [dict(empty_row(row["recipe"]), **row) for row in result["candidates"]]
    nothing = reference_verifies_nothing(session.reference_metrics["map50_95"], session.dataset.description)
    if nothing:
        verdict = Verdict(max_drop=spec.auto_max_drop, passed=False, reason=nothing)
    elif chosen is None:
        closest = result["closest"]
        reason = (
            f"no candidate keeps the mAP50-95 drop within {spec.auto_max_drop} points; closest: "
            f"{closest['recipe']} ({closest['delta_map50_95']:+.2f} pt)"
            if closest and closest["delta_map50_95"] is not None
            else f"no candidate converted within {spec.auto_max_drop} points"
        )
        verdict = Verdict(max_drop=spec.auto_max_drop, passed=False, reason=reason)
    else:
        verdict = Verdict(max_drop=spec.auto_max_drop, passed=True, reason=f"chose {chosen.recipe.name}")
    return JobReport(
        kind="convert",
        model=str(spec.model),
        data=session.dataset.description,
        num_images=len(session.dataset),
        calibration=session.calibration,
        rows=tuple(rows),
        artifacts=(_artifact(f"auto_{chosen.recipe.name}", result["chosen"]["path"]),) if chosen else (),
        latency={"threads": spec.threads, "note": "each candidate timed on its own (30 runs)"},
        verdict=verdict,
        auto=result,
    )


def _evaluate(spec, out, progress):
    runner = TFLiteRunner(spec.model, num_threads=spec.threads)
    dataset = DetectionDataset.from_data_yaml(resolve_data(spec.data, spec.model), spec.split)
    progress.stage(f"evaluating {Path(spec.model).name}", len(dataset))
    result, _, _ = evaluate_model(runner, dataset, spec.split, progress=progress.advance)
    progress.end_stage()
    row = dict(
        empty_row(Path(spec.model).stem),
        path=str(spec.model),
        size_bytes=Path(spec.model).stat().st_size,
        map50_95=result["map50_95"],
        map50=result["map50"],
        **task_columns(result),
        evaluation=result,
    )
    return JobReport(
        kind="evaluate",
        model=str(spec.model),
        data=dataset.description,
        num_images=len(dataset),
        calibration=None,
        rows=(row,),
        artifacts=(),
        latency=None,
        verdict=Verdict(max_drop=None, passed=None),
    )


def _bench(spec, out, progress):
    progress.stage(f"timing {Path(spec.model).name}", 1)
    results = benchmark_models([spec.model], [spec.threads], warmup=10, runs=100)
    progress.advance()
    progress.end_stage()
    model = results["models"][0]
    row = dict(
        empty_row(Path(spec.model).stem),
        path=str(spec.model),
        size_bytes=model["size_bytes"],
        latency_ms_p50=model["runs"][0]["latency_ms_p50"],
        latency_runs=model["runs"][0],
        ops=model["ops"],
    )
    return JobReport(
        kind="bench",
        model=str(spec.model),
        data=None,
        num_images=0,
        calibration=None,
        rows=(row,),
        artifacts=(),
        latency={"threads": spec.threads, "runs": 100, "warmup": 10},
        verdict=Verdict(max_drop=None, passed=None),
    )


def _write_bundle_zip(model_path, images, out, progress, evaluation=None, latency=None):
    """The edge bundle of `model_path` as folder `out/bundle` and `out/bundle.zip`; returns the zip's path."""
    progress.message(f"bundle: golden vectors from {len(images)} image(s)")
    progress.stage("writing the edge bundle", 1, unit="bundle")
    files = make_bundle(model_path, images, evaluation=evaluation, latency=latency)
    folder = out / "bundle"
    write_bundle(folder, files)
    archive_path = out / "bundle.zip"
    with atomic_path(archive_path) as temporary, zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in sorted(files):
            archive.write(folder / relative, f"bundle/{relative}")
    progress.advance()
    progress.end_stage()
    return archive_path


def _bundle_only(spec, out, progress):
    images = golden_image_paths(spec.model, spec.calibration, GOLDEN_IMAGES)
    archive = _write_bundle_zip(spec.model, images, out, progress)
    return JobReport(
        kind="bundle",
        model=str(spec.model),
        data=None,
        num_images=0,
        calibration=None,
        rows=(),
        artifacts=(_artifact("bundle", archive, kind="bundle"),),
        latency=None,
        verdict=Verdict(max_drop=None, passed=None),
        bundle=str(archive),
    )


def best_artifact(report):
    """The artifact an edge team gets: the fastest one that passes the gate (any, without a gate)."""
    rows = {row["recipe"]: row for row in report.rows}
    failing = set(report.verdict.failing)
    eligible = [a for a in report.artifacts if a.name not in failing and not rows.get(a.name, {}).get("error")]
    timed = [a for a in eligible if rows.get(a.name, {}).get("latency_ms_p50") is not None]
    if timed:
        return min(timed, key=lambda a: rows[a.name]["latency_ms_p50"])
    return eligible[0] if eligible else None


def _with_bundle(report, spec, out, progress):
    chosen = best_artifact(report)
    if chosen is None:
        progress.message("bundle: no artifact passes the gate; no bundle written")
        return report
    images = golden_image_paths(spec.model, spec.data, GOLDEN_IMAGES)
    row = next((row for row in report.rows if row["recipe"] == chosen.name), {})
    evaluation = {key: value for key, value in row.items() if key.endswith(("map50_95", "map50"))} if row else None
    archive = _write_bundle_zip(chosen.path, images, out, progress, evaluation=evaluation)
    return dataclasses.replace(
        report, artifacts=report.artifacts + (_artifact("bundle", archive, kind="bundle"),), bundle=str(archive)
    )
