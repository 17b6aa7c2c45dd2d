"""`tfyolo sensitivity`: rank layers by int8 error and measure what keeping the worst in float buys."""

from pathlib import Path

import click

from tfyolo.cli.common import AT_LEAST_ONE, NON_NEGATIVE, user_errors


@click.command("sensitivity")
@click.option("--model", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--calibration", type=click.Path(exists=True), help="Image folder or data.yaml (train split).")
@click.option("--data", "data_yaml", type=click.Path(), help="Evaluation data [default: the model's metadata].")
@click.option("--split", default="val", show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option(
    "--top", default=5, show_default=True, type=NON_NEGATIVE, help="Worst layers whose mAP effect is measured."
)
@click.option("--calibration-images", default=64, show_default=True, type=AT_LEAST_ONE)
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--force-calibration-overlap", is_flag=True)
@user_errors
def sensitivity_command(
    model, calibration, data_yaml, split, out, top, calibration_images, threads, force_calibration_overlap
):
    """Rank layers by int8 error (QuantizationDebugger) and measure the mAP effect of keeping the worst in float."""
    from tfyolo.console import TqdmProgress
    from tfyolo.jobs.auto_session import AutoSession
    from tfyolo.jobs.sensitivity import run_sensitivity

    session = AutoSession(
        model, calibration, data_yaml, split, calibration_images, threads, force_calibration_overlap, TqdmProgress()
    )
    run_sensitivity(session, top, out)
    click.echo(f"Wrote {Path(out) / 'sensitivity.json'}, sensitivity.md and sensitivity.png")
