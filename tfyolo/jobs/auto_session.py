"""What the accuracy-aware commands share (`convert --auto`, `sensitivity`): the float model, its evaluation on the
evaluation split, and the calibration images; `measure` turns one recipe into a scored, timed candidate through
`tfyolo.jobs.artifact_pipeline`, the path every artifact takes."""

import time
from pathlib import Path

from tfyolo.data.calibration_images import load_calibration_images
from tfyolo.data.detection_dataset import DetectionDataset
from tfyolo.errors import ConfigError, DataError, TfyoloError
from tfyolo.evaluation.evaluator import evaluate
from tfyolo.evaluation.model_evaluation import TASK_REPORT_KEYS
from tfyolo.io_utils import atomic_write_bytes, atomic_write_json, atomic_write_text
from tfyolo.jobs.artifact_pipeline import TIMING_ROUNDS, FloatModel, make_artifact, score_artifacts
from tfyolo.jobs.model_runner import keras_runner
from tfyolo.jobs.progress import Progress
from tfyolo.jobs.report import row_columns, task_delta_text
from tfyolo.markdown import markdown_table
from tfyolo.metadata import find_model_metadata, resolve_data
from tfyolo.models.detector_metadata import family_of
from tfyolo.models.model_io import load_keras_model
from tfyolo.qat.distillation import DistillationConfig, distill_qat_model
from tfyolo.quantization.auto import Candidate, is_qat_candidate, search
from tfyolo.quantization.calibration import default_calibration_source
from tfyolo.quantization.recipe import Recipe
from tfyolo.quantization.recipes_dir import resolve_recipe
from tfyolo.quantization.sensitivity import layer_sensitivity

CANDIDATE_COLUMNS = [
    ("recipe", "candidate", None),
    ("keep_float", "layers kept in float", None),
    ("map50_95", "mAP50-95", "{:.4f}"),
    ("delta_map50_95", "delta (pt)", "{:+.2f}"),
    ("latency_ms_p50", "p50 ms", "{:.2f}"),
    ("size_bytes", "size (bytes)", "{:,}"),
    ("error", "error", None),
]
# An NPU search adds Vela's estimate and what it leaves on the CPU.
TARGET_COLUMNS = [
    ("input_size", "input px", None),
    ("target_ms", "NPU est. ms", "{:.2f}"),
    ("target_cpu_operators", "ops left on the CPU", None),
    ("target_error", "not for the NPU", None),
]


class AutoSession:
    """The float model, its reference metrics and the calibration images, loaded once for many candidates.

    qat_epochs: epochs of the QAT candidate's distillation (on the calibration images), run in `work`/auto_qat the
    first time the search reaches it; 0: no QAT candidate.
    """

    def __init__(
        self,
        model,
        calibration,
        data_yaml,
        split,
        calibration_images,
        threads,
        force_overlap,
        progress=Progress(),
        qat_epochs=0,
        work=None,
        npu_target=None,
        force_training_overlap=False,
    ):
        self.model_path = model
        progress.stage(f"loading {Path(model).name}", 1, unit="model")
        self.model = load_keras_model(model)
        progress.advance()
        progress.end_stage()
        self.model_metadata = find_model_metadata(model)
        self.family = family_of(self.model_metadata)
        self.threads = threads
        self.split = split
        self.progress = progress
        self.qat_epochs = qat_epochs
        self.force_overlap = force_overlap
        self.force_training_overlap = force_training_overlap
        self.work = Path(work) if work else None
        self.npu_target = npu_target
        self._qat_model = None
        self.data_yaml = resolve_data(data_yaml, model)
        self.dataset = DetectionDataset.from_data_yaml(self.data_yaml, split)
        if calibration is None:
            calibration, why = default_calibration_source(model, self.model_metadata, self.data_yaml)
            progress.message(f"calibration: {why}")
        progress.stage("loading calibration images", 1, unit="set")
        self.images, self.calibration = load_calibration_images(
            calibration,
            int(self.model.input_shape[1]),
            calibration_images,
            0,
            [sample.image_path for sample in self.dataset.samples],
            force_overlap,
        )
        progress.advance()
        progress.end_stage()
        progress.message(
            f"calibration: {self.calibration['images_used']} images from {self.calibration['source']}; "
            f"evaluation: {len(self.dataset)} images of {self.dataset.description}"
        )
        self.reference_runner = keras_runner(model, self.model, metadata=self.model_metadata)
        self.float_model = FloatModel(
            str(model), self.model_metadata, self.reference_runner.input_size, self.reference_runner.num_classes
        )
        progress.stage("float reference", len(self.dataset))
        self.reference_metrics = evaluate(self.reference_runner, self.dataset, progress=progress.advance).all_metrics
        progress.end_stage()

    def qat_model(self):
        """The QAT model of the QAT candidate, distilled the first time it is asked for (`tfyolo.qat.distillation`:
        the float model's outputs on the calibration images are its targets, so it needs no labels); its path."""
        if self._qat_model is None:
            if self.work is None:
                raise TfyoloError("the QAT candidate needs a work folder for its training run.")
            overlap = self.calibration.get("overlap_with_evaluation", 0)
            if overlap and not self.force_training_overlap:
                # Calibrating on an evaluated image was forced; learning from it is a further step, asked for apart.
                raise DataError(
                    f"{self.calibration['source']}: {overlap} of the calibration images the search's QAT candidate "
                    "learns from have the same content as evaluated images; a model fine-tuned on its test images "
                    "reports a flattering mAP. Pass --force-training-overlap to accept it."
                )
            out = self.work / "auto_qat" / "distilled.h5"
            out.parent.mkdir(parents=True, exist_ok=True)
            config = DistillationConfig(epochs=self.qat_epochs)
            self.progress.message(
                f"  training the QAT candidate: {self.qat_epochs} epoch(s) of distillation from the float model on "
                f"{len(self.images)} calibration images ({config.holdout:.0%} held out to keep the best) into {out}"
            )

            def report(epoch):
                kept = "best so far" if epoch["best"] else "not kept"
                self.progress.message(
                    f"    epoch {epoch['epoch']}/{self.qat_epochs}: held-out loss {epoch['held_out_loss']:.4f} ({kept})"
                )

            history = distill_qat_model(self.model_path, self.images, out, config, report)
            atomic_write_json(out.parent / "history.json", history)
            self._qat_model = out
        return self._qat_model

    def measure(self, recipe):
        """One candidate through the artifact pipeline every artifact takes: made, checked, scored against the float
        model, timed."""
        candidate = Candidate(recipe=recipe, keep_float=recipe.keep_float)
        is_qat = is_qat_candidate(recipe)
        # A QAT model learned its ranges: it converts without calibration images.
        calibrated = recipe.needs_calibration and not is_qat
        try:
            source = self.qat_model() if is_qat else self.model_path
            self.progress.stage(f"candidate {recipe.name}: converting", 1, unit="recipe")
            content, facts = make_artifact(
                self.float_model, recipe, source, self.images if calibrated else None, self.calibration, is_qat
            )
            self.progress.advance()
            self.progress.end_stage()
            # int16x8 runs on reference kernels, tens of times slower: a few rounds time it well enough.
            rounds = 3 if recipe.mode == "int16x8" else TIMING_ROUNDS
            scored, _, _ = score_artifacts(
                {recipe.name: content},
                self.dataset,
                self.split,
                self.reference_runner,
                self.threads,
                self.progress,
                rounds,
            )
            row = scored[recipe.name]
            candidate.map50_95, candidate.delta_map50_95 = row["map50_95"], row["delta_map50_95"]
            candidate.task_columns = {
                column: row[column]
                for key in TASK_REPORT_KEYS
                for column in (f"{key}_map50_95", f"delta_{key}_map50_95")
                if column in row
            }
            candidate.latency_ms_p50, candidate.size_bytes = row["latency_ms_p50"], facts["size_bytes"]
            candidate.content = content
            if self.npu_target is not None:
                self._estimate_on_npu(candidate)
        except TfyoloError as error:
            candidate.error = str(error)
            self.progress.end_stage()
        return candidate

    def _estimate_on_npu(self, candidate):
        from tfyolo.targets.npu_target import compile_for_npu

        self.progress.stage(
            f"candidate {candidate.recipe.name}: Vela for {self.npu_target.accelerator}", 1, unit="model"
        )
        try:
            _, npu = compile_for_npu(candidate.content, self.npu_target, candidate.recipe.name)
            candidate.target_ms, candidate.target_cpu_operators = npu.inference_ms, npu.cpu_operators
        except ConfigError as error:
            candidate.target_error = str(error)
        self.progress.advance()
        self.progress.end_stage()


def smaller_input_sizes(size):
    """The smaller input side an NPU search tries too: 0.8x the model's, on the stride-32 grid (320 -> 256, 640 ->
    512); a quarter fewer pixels at least wherever the grid allows, so about that much less NPU time."""
    smaller = int(size * 0.8) // 32 * 32
    return (smaller,) if 32 <= smaller < size else ()


def run_auto(session, max_drop, prefer, out, top_layers=8):
    """The auto search; writes the candidates table, and the chosen recipe and artifact into `out`.

    Returns (chosen Candidate or None, result dict with every candidate's row, the chosen and the closest).
    """
    out = Path(out)
    progress = session.progress
    started = time.perf_counter()

    def ranked():
        progress.message("  int8 misses the budget: ranking layers by quantization error (QuantizationDebugger)")
        progress.stage("ranking layers by int8 error (QuantizationDebugger)", 1, unit="pass")
        ranking = layer_sensitivity(session.model, session.images[:32], session.images[:8], session.family)
        progress.advance()
        progress.end_stage()
        return [entry["layer"] for entry in ranking[:top_layers]]

    def report(candidate):
        row = candidate.row()
        status = (
            row["error"]
            or f"mAP50-95 {row['map50_95']:.4f} ({row['delta_map50_95']:+.2f} pt){task_delta_text(row)}, "
            f"{row['latency_ms_p50']:.2f} ms"
        )
        if row["target_ms"] is not None:
            status += f", {session.npu_target.accelerator} est. {row['target_ms']:.2f} ms"
            status += f" (CPU: {row['target_cpu_operators']})" if row["target_cpu_operators"] else " (all on the NPU)"
        progress.message(f"  {row['recipe']}{' ' + str(row['keep_float']) if row['keep_float'] else ''}: {status}")

    for_npu = session.npu_target is not None
    builtin = resolve_recipe("int8_int8io" if for_npu else "int8")
    base = Recipe(**{**builtin.to_dict(), "calibration_images": len(session.images)})
    prefer = "target" if for_npu else prefer
    chosen, tried, closest = search(
        base,
        ranked,
        session.measure,
        max_drop,
        prefer,
        progress=report,
        qat_epochs=session.qat_epochs,
        smaller_sizes=smaller_input_sizes(session.reference_runner.input_size) if for_npu else (),
    )
    result = {
        "model": str(session.model_path),
        "max_drop": max_drop,
        "prefer": prefer,
        "target": session.npu_target.accelerator if for_npu else None,
        "reference_map50_95": session.reference_metrics["map50_95"],
        "calibration": session.calibration,
        "search_seconds": time.perf_counter() - started,
        "candidates": [c.row() for c in tried],
        "chosen": chosen.row() if chosen else None,
        "closest": closest.row() if closest else None,
    }
    atomic_write_json(out / "auto_candidates.json", result)
    atomic_write_text(
        out / "auto_candidates.md",
        "\n".join(
            [
                f"# Auto quantization of `{session.model_path}` (max drop {max_drop} pt, prefer {prefer})",
                "",
                markdown_table(
                    result["candidates"],
                    row_columns(result["candidates"], CANDIDATE_COLUMNS + (TARGET_COLUMNS if for_npu else [])),
                ),
                "",
                f"Chosen: {result['chosen']['recipe'] if chosen else 'none within the budget'}; "
                f"search took {result['search_seconds']:.0f} s.",
                "",
            ]
        ),
    )
    if chosen:
        recipe = chosen.recipe
        if is_qat_candidate(recipe):
            reuse = (
                f"its QAT model is {session.qat_model()}: `tfyolo convert --model {session.model_path} --qat-model "
                f"{session.qat_model()} --recipe fp32` converts it again"
            )
        else:
            reuse = f"reuse with --recipe {out / 'auto_recipe.yaml'}"
        atomic_write_text(
            out / "auto_recipe.yaml",
            f"# Chosen by tfyolo convert --auto --max-drop {max_drop}; {reuse}.\n" + recipe.to_yaml(),
        )
        path = out / f"{Path(session.model_path).parent.name}_auto_{recipe.name}.tflite"
        atomic_write_bytes(path, chosen.content)
        result["chosen"].update(path=str(path), reuse=reuse)
    return chosen, result
