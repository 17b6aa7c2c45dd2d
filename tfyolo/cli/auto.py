"""`tfyolo sensitivity` and `tfyolo convert --auto`: accuracy-aware quantization."""

import sys
import time
from pathlib import Path

import click

from tfyolo.cli.common import markdown_table, progress_bar, user_errors
from tfyolo.errors import TfyoloError


class Session:
    """What both commands share: the float model, its evaluation on the val split, calibration images."""

    def __init__(self, model, calibration, data_yaml, split, calibration_images, threads, force_overlap):
        from tfyolo.data.detection_dataset import DetectionDataset
        from tfyolo.evaluation.evaluator import evaluate
        from tfyolo.evaluation.runners import KerasRunner
        from tfyolo.metadata import find_model_metadata, resolve_data
        from tfyolo.models.model_io import load_keras_model
        from tfyolo.quantization.calibration import default_calibration_source, load_calibration_images

        self.model_path = model
        self.model = load_keras_model(model)
        self.model_metadata = find_model_metadata(model)
        self.threads = threads
        self.dataset = DetectionDataset.from_data_yaml(resolve_data(data_yaml, model), split)
        if calibration is None:
            calibration, why = default_calibration_source(model, self.model_metadata)
            click.echo(f"calibration: {why}", err=True)
        self.images, self.calibration = load_calibration_images(
            calibration,
            int(self.model.input_shape[1]),
            calibration_images,
            0,
            [sample.image_path for sample in self.dataset.samples],
            force_overlap,
        )
        click.echo(
            f"calibration: {self.calibration['images_used']} images from {self.calibration['source']}; "
            f"evaluation: {len(self.dataset)} images of {self.dataset.description}",
            err=True,
        )
        self.reference_runner = KerasRunner(self.model, description=str(model))
        with progress_bar(len(self.dataset), "float reference") as bar:
            self.reference_metrics = evaluate(self.reference_runner, self.dataset, progress=bar.update).metrics

    def measure(self, recipe):
        """Converts, checks, embeds, evaluates against the float model and times one candidate."""
        from tfyolo.benchmark import benchmark_tflite
        from tfyolo.evaluation.model_evaluation import evaluate_model
        from tfyolo.evaluation.runners import TFLiteRunner
        from tfyolo.quantization.artifact import artifact_metadata, finalize_artifact
        from tfyolo.quantization.auto import Candidate
        from tfyolo.quantization.isolated import convert_isolated

        candidate = Candidate(recipe=recipe, keep_float=recipe.keep_float)
        calibrated = recipe.needs_calibration
        try:
            content = convert_isolated(self.model_path, recipe, self.images if calibrated else None)
            metadata = artifact_metadata(
                self.model_metadata,
                recipe,
                self.calibration if calibrated else None,
                self.reference_runner.input_size,
                self.reference_runner.num_classes,
                self.model_path,
            )
            content, _ = finalize_artifact(content, recipe, metadata)
            runner = TFLiteRunner(model_content=content, num_threads=self.threads)
            report, _, _ = evaluate_model(runner, self.dataset, "val", self.reference_runner)
            slow = recipe.mode == "int16x8"
            latency = benchmark_tflite(content, self.threads, warmup=2 if slow else 5, runs=3 if slow else 30)
            candidate.map50_95, candidate.delta_map50_95 = report["map50_95"], report["delta_map50_95"]
            candidate.latency_ms_p50, candidate.size_bytes = latency["latency_ms_p50"], len(content)
            candidate.content = content
        except TfyoloError as error:
            candidate.error = str(error)
        return candidate


CANDIDATE_COLUMNS = [
    ("recipe", "candidate", None),
    ("keep_float", "layers kept in float", None),
    ("map50_95", "mAP50-95", "{:.4f}"),
    ("delta_map50_95", "delta (pt)", "{:+.2f}"),
    ("latency_ms_p50", "p50 ms", "{:.2f}"),
    ("size_bytes", "size (bytes)", "{:,}"),
    ("error", "error", None),
]


def run_auto(session, max_drop, prefer, out, top_layers=8):
    """The --auto search; writes the candidates table, the chosen recipe and artifact; returns (chosen, tried)."""
    from tfyolo.io_utils import atomic_write_bytes, atomic_write_json, atomic_write_text
    from tfyolo.quantization.auto import search
    from tfyolo.quantization.recipe import Recipe
    from tfyolo.quantization.sensitivity import layer_sensitivity

    out = Path(out)
    started = time.perf_counter()

    def ranked():
        click.echo("  int8 misses the budget: ranking layers by quantization error (QuantizationDebugger)", err=True)
        ranking = layer_sensitivity(session.model, session.images[:32], session.images[:8])
        return [entry["layer"] for entry in ranking[:top_layers]]

    def report(candidate):
        row = candidate.row()
        status = (
            row["error"]
            or f"mAP50-95 {row['map50_95']:.4f} ({row['delta_map50_95']:+.2f} pt), {row['latency_ms_p50']:.2f} ms"
        )
        click.echo(f"  {row['recipe']}{' ' + str(row['keep_float']) if row['keep_float'] else ''}: {status}", err=True)

    base = Recipe(name="int8", mode="int8", calibration_images=len(session.images))
    chosen, tried, closest = search(base, ranked, session.measure, max_drop, prefer, progress=report)
    result = {
        "model": str(session.model_path),
        "max_drop": max_drop,
        "prefer": prefer,
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
                markdown_table(result["candidates"], CANDIDATE_COLUMNS),
                "",
                f"Chosen: {result['chosen']['recipe'] if chosen else 'none within the budget'}; "
                f"search took {result['search_seconds']:.0f} s.",
                "",
            ]
        ),
    )
    if chosen:
        recipe = chosen.recipe
        atomic_write_text(
            out / "auto_recipe.yaml",
            f"# Chosen by tfyolo convert --auto --max-drop {max_drop}; reuse with --recipe.\n" + recipe.to_yaml(),
        )
        atomic_write_bytes(out / f"{Path(session.model_path).parent.name}_auto_{recipe.name}.tflite", chosen.content)
    return chosen, tried, closest, result


@click.command("sensitivity")
@click.option("--model", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--calibration", type=click.Path(exists=True), help="Image folder or data.yaml (train split).")
@click.option("--data", "data_yaml", type=click.Path(), help="Evaluation data [default: the model's metadata].")
@click.option("--split", default="val", show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--top", default=5, show_default=True, help="Worst layers whose mAP effect is measured.")
@click.option("--calibration-images", default=64, show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--force-calibration-overlap", is_flag=True)
@user_errors
def sensitivity_command(
    model, calibration, data_yaml, split, out, top, calibration_images, threads, force_calibration_overlap
):
    """Rank layers by int8 error (QuantizationDebugger) and measure the mAP effect of keeping the worst in float."""
    from tfyolo.io_utils import atomic_write_json, atomic_write_text
    from tfyolo.quantization.recipe import Recipe
    from tfyolo.quantization.sensitivity import layer_sensitivity

    session = Session(model, calibration, data_yaml, split, calibration_images, threads, force_calibration_overlap)
    ranking = layer_sensitivity(session.model, session.images[:32], session.images[:8])
    baseline = session.measure(Recipe(name="int8", mode="int8"))
    click.echo(f"plain int8: mAP50-95 {baseline.map50_95:.4f} ({baseline.delta_map50_95:+.2f} pt)", err=True)
    for entry in ranking[:top]:
        candidate = session.measure(
            Recipe(name=f"int8_float_{entry['layer']}", mode="int8", keep_float=(entry["layer"],))
        )
        entry["map50_95_kept_float"] = candidate.map50_95
        entry["map_gain_points"] = (
            None if candidate.map50_95 is None else 100 * (candidate.map50_95 - baseline.map50_95)
        )
        click.echo(
            f"  {entry['layer']:<24} rmse/scale {entry['rmse_over_scale']:.3f}  kept in float: "
            f"{'-' if candidate.map50_95 is None else f'{candidate.map50_95:.4f}'}",
            err=True,
        )
    out = Path(out)
    result = {
        "model": model,
        "int8_map50_95": baseline.map50_95,
        "int8_delta": baseline.delta_map50_95,
        "float_map50_95": session.reference_metrics["map50_95"],
        "layers": ranking,
    }
    atomic_write_json(out / "sensitivity.json", result)
    columns = [
        ("layer", "layer", None),
        ("section", "section", None),
        ("op", "op", None),
        ("rmse_over_scale", "RMSE/scale", "{:.3f}"),
        ("map50_95_kept_float", "mAP50-95 if float", "{:.4f}"),
        ("map_gain_points", "gain (pt)", "{:+.2f}"),
    ]
    atomic_write_text(
        out / "sensitivity.md",
        "\n".join(
            [
                f"# Layer sensitivity of `{model}`",
                "",
                f"float mAP50-95 {result['float_map50_95']:.4f}; int8 {baseline.map50_95:.4f} "
                f"({baseline.delta_map50_95:+.2f} pt).",
                "",
                markdown_table(ranking[:40], columns),
                "",
            ]
        ),
    )
    plot_sensitivity(ranking, out / "sensitivity.png")
    click.echo(f"Wrote {out / 'sensitivity.json'}, sensitivity.md and sensitivity.png")


def plot_sensitivity(ranking, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"backbone": "tab:blue", "neck": "tab:orange", "head": "tab:green"}
    shown = ranking[:40]
    figure, axis = plt.subplots(figsize=(10, 4))
    axis.bar(range(len(shown)), [e["rmse_over_scale"] for e in shown], color=[colors[e["section"]] for e in shown])
    axis.set_xticks(range(len(shown)))
    axis.set_xticklabels([e["layer"] for e in shown], rotation=90, fontsize=6)
    axis.set(ylabel="RMSE / scale", title="int8 error by layer (worst 40)")
    for section, color in colors.items():
        axis.bar([], [], color=color, label=section)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def auto_command_body(model, calibration, data_yaml, split, out, threads, force_overlap, max_drop, prefer):
    session = Session(model, calibration, data_yaml, split, 100, threads, force_overlap)
    chosen, tried, closest, result = run_auto(session, max_drop, prefer, out)
    if chosen is None:
        name = closest.row()["recipe"] if closest else "none"
        delta = f"{closest.delta_map50_95:+.2f} pt" if closest else "-"
        click.echo(
            f"No candidate keeps the mAP50-95 drop within {max_drop} points; closest: {name} ({delta}). "
            f"Table: {Path(out) / 'auto_candidates.md'}",
            err=True,
        )
        sys.exit(1)
    click.echo(
        f"Chosen: {chosen.recipe.name} (mAP50-95 {chosen.map50_95:.4f}, {chosen.delta_map50_95:+.2f} pt, "
        f"{chosen.latency_ms_p50:.2f} ms) after {len(tried)} candidate(s); recipe saved as "
        f"{Path(out) / 'auto_recipe.yaml'} (reuse with --recipe)."
    )
