"""`tfyolo target`: an artifact on Ethos-U NPUs (Vela's estimates) and in TFLite Micro, without the device."""

from pathlib import Path

import click

from tfyolo.cli.common import AT_LEAST_ONE, check_tflite_in_child, user_errors


def npu_options(function):
    """The options that name Ethos-U targets, shared by `target`, `bundle` and `convert --auto`."""
    from tfyolo.targets.npu_target import ACCELERATORS

    options = [
        click.option(
            "--npu",
            "npus",
            multiple=True,
            type=click.Choice(ACCELERATORS),
            help="Ethos-U configuration to compile for with Vela (repeatable).",
        ),
        click.option(
            "--system-config", default=None, help="Vela system config (vela.ini) [default: Vela's for the NPU]."
        ),
        click.option("--memory-mode", default=None, help="Vela memory mode (vela.ini) [default: Vela's for the NPU]."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def npu_targets(npus, system_config, memory_mode):
    from tfyolo.targets.npu_target import NpuTarget

    return tuple(NpuTarget(npu, system_config=system_config, memory_mode=memory_mode) for npu in npus)


@click.command("target")
@click.argument("artifact", type=click.Path(exists=True, dir_okay=False))
@npu_options
@click.option("--mcu", is_flag=True, help="Run it in TFLite Micro: parity with LiteRT, tensor arena, missing ops.")
@click.option(
    "--images",
    "image_source",
    type=click.Path(exists=True),
    help="Images for --mcu (folder or data.yaml) [default: the model's val data, else calibration_data/].",
)
@click.option("--golden", default=2, show_default=True, type=AT_LEAST_ONE, help="Images TFLite Micro runs (--mcu).")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for the outputs [default: beside ARTIFACT].")
@user_errors
def target_command(artifact, npus, system_config, memory_mode, mcu, image_source, golden, out):
    """ARTIFACT (.tflite) on its targets: for each --npu, Vela's operator placement, SRAM and flash, MACs and
    estimated time, and the Vela-compiled model beside ARTIFACT (<stem>_vela_<npu>.tflite); with --mcu, TFLite
    Micro's parity with LiteRT, its arena size and any operator it lacks. Writes <stem>_targets.json and .md."""
    from tfyolo.bundle import golden_inputs
    from tfyolo.io_utils import atomic_write_bytes, atomic_write_json, atomic_write_text
    from tfyolo.targets.target_check import check_targets, targets_markdown

    if not npus and not mcu:
        raise click.UsageError("name at least one target: --npu ethos-u55-128 (repeatable) and/or --mcu.")
    artifact = Path(artifact)
    check_tflite_in_child(artifact, mcu)
    out = Path(out) if out else artifact.parent
    out.mkdir(parents=True, exist_ok=True)
    targets = npu_targets(npus, system_config, memory_mode)
    inputs = golden_inputs(artifact, image_source, golden) if mcu else None
    if mcu:
        click.echo(f"TFLite Micro: running {len(inputs)} input(s), a few seconds each on a CPU ...", err=True)
    report, compiled = check_targets(artifact.read_bytes(), artifact.stem, targets, inputs)
    for accelerator, content in compiled.items():
        path = out / f"{artifact.stem}_vela_{accelerator}.tflite"
        atomic_write_bytes(path, content)
        report["npu"][accelerator]["compiled_model"] = path.name
    atomic_write_json(out / f"{artifact.stem}_targets.json", report)
    markdown = targets_markdown(report)
    atomic_write_text(out / f"{artifact.stem}_targets.md", markdown)
    click.echo(markdown)
    click.echo(
        f"Wrote {out / (artifact.stem + '_targets.json')} and .md"
        + (", and the Vela-compiled models" if compiled else "")
        + "."
    )
    if report["mcu"] is not None and not report["mcu"]["parity"]:
        raise click.ClickException(f"{artifact}: TFLite Micro's outputs do not match LiteRT's (see above).")
