"""The one path by which a recipe becomes a checked artifact, and artifacts become scored rows, whoever asks: a
convert job's recipe list, the `--auto` search and `tfyolo sensitivity` all call `make_artifact` and
`score_artifacts`, so a check added here holds for every artifact tfyolo writes.

make_artifact: convert in a child process (a native crash of the converter is one error, not a dead job), hold
the artifact to its recipe (integer-only, I/O types), embed its metadata, record its kernel statistics and refuse
a clustered or pruned model whose structure did not survive into the int8 kernels.
score_artifacts: evaluate every artifact against the float model in one lockstep pass (an artifact at another input
size alone, against the float model's figures), then time them together, interleaved."""

import dataclasses
import json
import time
from typing import Optional

from tfyolo.benchmark import interleaved_latency
from tfyolo.evaluation.evaluator import evaluate
from tfyolo.evaluation.model_evaluation import evaluate_models, task_columns
from tfyolo.evaluation.runners import TFLiteRunner
from tfyolo.metadata import find_model_metadata
from tfyolo.models.detector_metadata import family_of
from tfyolo.quantization.aeq import with_float_boundary
from tfyolo.quantization.artifact import artifact_metadata, finalize_artifact
from tfyolo.quantization.isolated import ConversionError, convert_isolated
from tfyolo.quantization.recipe import Recipe
from tfyolo.quantization.weight_stats import broken_promise, gzip_size, kernel_stats, promised_structure

TIMING_ROUNDS = 15


@dataclasses.dataclass(frozen=True)
class FloatModel:
    """What every artifact of one job says about the float model it came from."""

    path: str
    metadata: Optional[dict]
    input_size: int
    num_classes: int


def make_artifact(float_model, recipe, source=None, images=None, calibration=None, qat=False, converted=None):
    """One recipe converted and checked: (artifact bytes with metadata, facts dict for its report row).

    source: the Keras file converted (a QAT model of the float model; default the float model itself).
    images: calibration images (None: a recipe that needs none, or a QAT model whose ranges were learned).
    calibration: the summary of those images, embedded in the metadata.
    converted: a dict the caller keeps for one job's artifacts, so that recipes sharing a conversion share it.
    Raises a TfyoloError (ConversionError, ModelError) when the converter or a check refuses it."""
    source = source or float_model.path
    recipe = recipe.for_family(family_of(float_model.metadata))
    started = time.perf_counter()
    content = _convert(source, recipe, images, converted)
    seconds = time.perf_counter() - started
    metadata = artifact_metadata(
        float_model.metadata,
        recipe,
        calibration if images is not None else None,
        recipe.input_size or float_model.input_size,
        float_model.num_classes,
        source,
        qat=qat,
    )
    source_metadata = find_model_metadata(source) if source != float_model.path else float_model.metadata
    # A staged QAT model keeps its head in float on purpose: the integer-only check would refuse it.
    staged = qat and bool((source_metadata or {}).get("qat_staged"))
    content, inspection = finalize_artifact(content, recipe, metadata, allow_float=staged)
    kernels = kernel_stats(content)
    # A clustered or pruned model's artifact must still hold that structure in its int8 kernels.
    broken = broken_promise(kernels, promised_structure(source_metadata, find_model_metadata))
    if broken:
        raise ConversionError(f"recipe {recipe.name!r}: {broken}.")
    facts = {
        "convert_seconds": seconds,
        "full_integer": inspection["full_integer"],
        "ops": inspection["ops"],
        "tensor_types": inspection["tensor_types"],
        "io_types": inspection["io_types"],
        "gzip_bytes": gzip_size(content),
        "kernels": kernels,
        "size_bytes": len(content),
    }
    return content, facts


def _convert(source, recipe, images, converted):
    """ai-edge-quantizer's int8 with float32 I/O is its int8 I/O graph behind a QUANTIZE / DEQUANTIZE boundary: one
    conversion (its calibration pass is most of the time) serves both, `int8` and `int8_int8io`, within a job."""
    if converted is None or recipe.quantizer != "ai_edge_quantizer":
        return convert_isolated(source, recipe, images)
    integer = Recipe(**{**recipe.to_dict(), "io_type": "int8"})
    shared = {key: value for key, value in integer.to_dict().items() if key not in ("name", "description")}
    key = (str(source), json.dumps(shared, sort_keys=True))
    if key not in converted:
        converted[key] = convert_isolated(source, integer, images)
    return converted[key] if recipe.io_type == "int8" else with_float_boundary(converted[key])


def score_artifacts(artifacts, dataset, split, float_runner, threads, progress, rounds=TIMING_ROUNDS):
    """Scores {name: artifact bytes} against `float_runner` on `dataset` (None: timing only) and times them
    interleaved.

    Returns ({name: row fields}, the float model's metrics dict or None, the timing conditions dict or None)."""
    rows, reference_metrics = {name: {} for name in artifacts}, None
    if dataset is not None:
        reference_metrics = _evaluate_artifacts(artifacts, dataset, split, float_runner, threads, progress, rows)
    latency = time_artifacts(artifacts, threads, progress, rounds)
    for name, stats in (latency or {}).get("models", {}).items():
        rows[name]["latency_ms_p50"] = stats["latency_ms_p50"]
        rows[name]["latency_runs"] = stats["runs"]
    conditions = None if latency is None else {key: value for key, value in latency.items() if key != "models"}
    return rows, reference_metrics, conditions


def _evaluate_artifacts(artifacts, dataset, split, float_runner, threads, progress, rows):
    """Fills `rows` with each artifact's scores against the float model; returns the float model's metrics."""
    runners = {name: TFLiteRunner(model_content=content, num_threads=threads) for name, content in artifacts.items()}
    # An artifact at another input size (a recipe's input_size) cannot run in lockstep with the float model.
    resized = {name: runner for name, runner in runners.items() if runner.input_size != float_runner.input_size}
    progress.stage(f"evaluating float + {len(runners) - len(resized)} artifact(s)", len(dataset))
    results, evaluations, reference = evaluate_models(
        {name: runner for name, runner in runners.items() if name not in resized},
        dataset,
        split,
        float_runner,
        progress=progress.advance,
    )
    progress.end_stage()
    reference_metrics = reference.all_metrics
    for name, result in results.items():
        rows[name] = {
            "map50_95": result["map50_95"],
            "map50": result["map50"],
            "delta_map50_95": result["delta_map50_95"],
            **task_columns(result, result["reference"]),
            "output_errors": result["output_errors"],
            "detection_agreement": result["detection_agreement"]["agreement"],
            "pr_curves": evaluations[name].metrics.get("pr_curves"),
        }
    for name, runner in resized.items():
        progress.stage(f"evaluating {name} at {runner.input_size} px", len(dataset))
        metrics = evaluate(runner, dataset, progress=progress.advance).all_metrics
        progress.end_stage()
        rows[name] = {
            "map50_95": metrics["map50_95"],
            "map50": metrics["map50"],
            "delta_map50_95": 100 * (metrics["map50_95"] - reference_metrics["map50_95"]),
            **task_columns(metrics, reference_metrics),
            "note": f"at {runner.input_size} px, against the float model at {float_runner.input_size} px",
        }
    return reference_metrics


def time_artifacts(artifacts, threads, progress, rounds=TIMING_ROUNDS):
    """Every artifact timed in one interleaved run (their ratios hold on a loaded machine); None when none."""
    if not artifacts:
        return None
    progress.stage("timing (interleaved)", rounds, unit="round")
    latency = interleaved_latency(artifacts, num_threads=threads, rounds=rounds, progress=progress.advance)
    progress.end_stage()
    return latency
