"""`tfyolo convert`: convert a model with recipes (or search one with --auto), check each artifact, evaluate it
against the float model. The work is `tfyolo.jobs.run_job`; this only parses and prints."""

from pathlib import Path

import click

from tfyolo.cli.common import MODEL_INPUT_SIZE, user_errors
from tfyolo.targets.npu_target import ACCELERATORS

AUTO_DEFAULT_MAX_DROP = 0.5


@click.command("convert")
@click.option(
    "--model",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Float .keras / .h5, or an Ultralytics .pt / .onnx (imported first, cached in OUT/imported).",
)
@click.option(
    "--imgsz",
    type=MODEL_INPUT_SIZE,
    default=None,
    help="An imported .pt / .onnx: its input size [default: the size it was trained at].",
)
@click.option(
    "--head",
    type=click.Choice(["one2one", "one2many"]),
    default=None,
    help="An imported YOLO26: one2one (top-k, no NMS) or one2many (NMS) [default: one2one].",
)
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
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--no-eval", is_flag=True, help="Only convert and check; no mAP.")
@click.option("--force-calibration-overlap", is_flag=True, help="Allow calibrating on evaluated images.")
@click.option(
    "--force-training-overlap",
    is_flag=True,
    help="Allow fine-tuning (--auto's QAT candidate, cluster_int8 / prune_int8) on evaluated images.",
)
@click.option(
    "--qat-model",
    type=click.Path(exists=True, dir_okay=False),
    help="Also convert this QAT model of the same detector (rows qat_int8, qat_int8_int8io).",
)
@click.option("--auto", is_flag=True, help="Search the fastest recipe whose mAP50-95 drop stays within --max-drop.")
@click.option(
    "--max-drop",
    type=click.FloatRange(min=0.0),
    default=None,
    help=f"mAP50-95 points: the --auto budget [default: {AUTO_DEFAULT_MAX_DROP}], or without --auto a gate that "
    "fails the command when an artifact loses more.",
)
@click.option(
    "--prefer",
    type=click.Choice(["int8", "latency", "size"]),
    default="int8",
    show_default=True,
    help="--auto: stop at the first candidate within budget (int8), or the fastest / smallest of all.",
)
@click.option(
    "--auto-qat-epochs",
    default=3,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="--auto: epochs of quantization-aware distillation for the QAT candidate (on the calibration images, the "
    "float model's outputs as targets, the best epoch kept; tried after the 16-bit blocks); 0 leaves it out.",
)
@click.option(
    "--target",
    type=click.Choice(ACCELERATORS),
    default=None,
    help="--auto: search for this Ethos-U NPU: candidates it can run, chosen by Vela's estimated time.",
)
@user_errors
def convert_command(
    model,
    imgsz,
    head,
    recipe_names,
    calibration,
    data_yaml,
    split,
    out,
    name,
    threads,
    no_eval,
    force_calibration_overlap,
    force_training_overlap,
    qat_model,
    auto,
    max_drop,
    prefer,
    auto_qat_epochs,
    target,
):
    """Convert MODEL to TFLite with each recipe, verify it, and report accuracy against the float model."""
    from tfyolo.console import TqdmProgress
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec

    spec = JobSpec(
        model=model,
        imgsz=imgsz,
        head=head,
        recipes=tuple(recipe_names),
        auto_max_drop=(AUTO_DEFAULT_MAX_DROP if max_drop is None else max_drop) if auto else None,
        prefer=prefer,
        auto_qat_epochs=auto_qat_epochs,
        target=target,
        calibration=calibration,
        data=data_yaml,
        split=split,
        evaluate=not no_eval,
        threads=threads,
        max_drop=None if auto else max_drop,
        name=name,
        qat_model=qat_model,
        force_calibration_overlap=force_calibration_overlap,
        force_training_overlap=force_training_overlap,
    )
    report = run_job(spec, out, progress=TqdmProgress())
    if spec.is_auto:
        return _auto_summary(report, spec, out)
    click.echo("\n" + (Path(out) / "report.md").read_text())
    click.echo(f"Wrote {Path(out) / 'report.json'} and {Path(out) / 'report.md'}")
    failed = [row["recipe"] for row in report.rows if row.get("error")]
    if failed:
        raise click.ClickException(f"recipe(s) failed: {failed}; see the report.")
    if report.verdict.passed is False:
        raise click.ClickException(f"gate --max-drop {max_drop}: {report.verdict.reason}.")


def _auto_summary(report, spec, out):
    from tfyolo.jobs.report import task_delta_text

    chosen = report.auto["chosen"]
    if chosen is None or report.verdict.passed is False:
        click.echo(
            f"{report.verdict.reason[0].upper()}{report.verdict.reason[1:]}. Table: {Path(out) / 'auto_candidates.md'}",
            err=True,
        )
        raise SystemExit(1)
    click.echo(
        f"Chosen: {chosen['recipe']} (mAP50-95 {chosen['map50_95']:.4f}, {chosen['delta_map50_95']:+.2f} pt"
        f"{task_delta_text(chosen)}, {chosen['latency_ms_p50']:.2f} ms"
        + (f", {spec.target} est. {chosen['target_ms']:.2f} ms" if spec.target else "")
        + f") after {len(report.auto['candidates'])} candidate(s); recipe saved as "
        f"{Path(out) / 'auto_recipe.yaml'} ({chosen['reuse']})."
    )
