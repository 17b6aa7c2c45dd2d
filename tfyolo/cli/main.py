"""The `tfyolo` command: each subcommand parses, calls the library, then prints and writes."""

import os
import time
from pathlib import Path

import click
from click.core import ParameterSource

from tfyolo.cli.common import (
    AT_LEAST_ONE,
    MODEL_INPUT_SIZE,
    NON_NEGATIVE,
    NON_NEGATIVE_FLOAT,
    POSITIVE_FLOAT,
    PROBABILITY,
    user_errors,
)
from tfyolo.cli.quiet import silence_native_logs
from tfyolo.console import TqdmTrainingReporter, progress_bar
from tfyolo.io_utils import ensure_writable_folder
from tfyolo.models.families import FAMILIES
from tfyolo.models.tasks import DEFAULT_TASK, TASKS
from tfyolo.training.train_config import COMPRESS_FINE_TUNE, COMPRESSIONS, PRESERVED_IN_QAT, QAT_FINE_TUNE

SCALE_NAMES = sorted({scale for family in FAMILIES.values() for scale in family.scales}, key="nsmlx".index)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="tfyolo")
@click.option("--debug", is_flag=True, help="Show tracebacks and TensorFlow's native log lines (or TFYOLO_DEBUG=1).")
def cli(debug):
    """tfyolo: train a Keras YOLO detector, quantize it to TFLite, and verify it before it ships."""
    if debug:
        os.environ["TFYOLO_DEBUG"] = "1"


@cli.group()
def data():
    """Create and check datasets."""


@data.command("synth")
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--images", default=500, show_default=True, type=click.IntRange(2, 1_000_000), help="Images in all (train + val)."
)
@click.option("--classes", default=3, show_default=True, type=click.IntRange(1, 8), help="Shape classes (1-8).")
@click.option("--imgsz", default=320, show_default=True, type=click.IntRange(32, 8192), help="Image side in pixels.")
@click.option("--seed", default=0, show_default=True, type=NON_NEGATIVE)
@click.option(
    "--val-fraction",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0.0, 1.0, max_open=True),
    help="Share of the images in the val split; the train split keeps the rest (at least one image).",
)
@user_errors
def data_synth(out, images, classes, imgsz, seed, val_fraction):
    """Write a deterministic synthetic detection set (YOLO format + data.yaml) to OUT."""
    from tfyolo.data.synthetic import write_synthetic_dataset

    with progress_bar(images, "synth") as bar:
        path = write_synthetic_dataset(out, images, classes, imgsz, seed, val_fraction, progress=bar.update)
    click.echo(f"Wrote {images} images to {out}; data file: {path}")


@data.command("calib")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--images", default=64, show_default=True, type=AT_LEAST_ONE)
@click.option("--classes", default=3, show_default=True, type=click.IntRange(1, 8))
@click.option("--imgsz", default=128, show_default=True, type=click.IntRange(32, 8192))
@click.option(
    "--seed", default=1, show_default=True, type=NON_NEGATIVE, help="Keep it different from the training set's seed."
)
@user_errors
def data_calib(out, images, classes, imgsz, seed):
    """Write the synthetic calibration image set (with MANIFEST.txt) to OUT."""
    from tfyolo.data.synthetic import write_calibration_images

    names = write_calibration_images(out, images, classes, imgsz, seed)
    click.echo(f"Wrote {len(names)} calibration images and MANIFEST.txt to {out}")


@data.command("check")
@click.argument("data_yaml", type=click.Path())
@user_errors
def data_check(data_yaml):
    """Validate every split of DATA_YAML and print its statistics."""
    from tfyolo.data.data_config import load_data_config
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.data.image_check import find_bad_images

    config = load_data_config(data_yaml)
    unusable = 0
    for split in config.splits:
        dataset = DetectionDataset.from_data_yaml(data_yaml, split)
        stats = dataset.stats
        with progress_bar(len(dataset), f"decoding {split} images") as bar:
            bad = find_bad_images([sample.image_path for sample in dataset.samples], progress=bar.update)
        click.echo(
            f"{split:>5}: {stats.images} images, {stats.boxes} boxes, {stats.background_images} background, "
            f"{dataset.num_classes} classes, {len(bad)} unreadable"
        )
        for note in stats.warnings():
            click.echo(f"       warning: {note}")
        for path, problem in bad:
            click.echo(f"       bad image: {path} {problem}")
        unusable += len(bad)
    if unusable:
        raise click.ClickException(f"{unusable} image(s) cannot be decoded; see above.")


@cli.command()
@click.option("--data", "data_yaml", type=click.Path(), help="data.yaml (Ultralytics format).")
@click.option(
    "--family",
    default="yolov8",
    show_default=True,
    type=click.Choice(sorted(FAMILIES)),
    help="Model family (Ultralytics' architectures, as plain Keras layers).",
)
@click.option("--model", "scale", default="n", show_default=True, type=click.Choice(SCALE_NAMES), help="Scale.")
@click.option(
    "--task",
    default=DEFAULT_TASK,
    show_default=True,
    type=click.Choice(sorted(TASKS)),
    help="What the model predicts (segment: instance masks too, learned from polygon labels).",
)
@click.option(
    "--activation", default="silu", show_default=True, type=click.Choice(["silu", "relu", "relu6", "hard_swish"])
)
@click.option("--imgsz", default=320, show_default=True, type=MODEL_INPUT_SIZE)
@click.option("--epochs", default=100, show_default=True, type=AT_LEAST_ONE)
@click.option("--batch", default=16, show_default=True, type=AT_LEAST_ONE)
@click.option("--optimizer", default="auto", show_default=True, type=click.Choice(["auto", "adamw", "sgd"]))
@click.option("--lr0", type=POSITIVE_FLOAT, default=None, help="Initial learning rate [default: YOLOv8's auto].")
@click.option("--schedule", default="linear", show_default=True, type=click.Choice(["linear", "cosine"]))
@click.option("--warmup-epochs", default=3.0, show_default=True, type=NON_NEGATIVE_FLOAT)
@click.option("--close-mosaic", default=10, show_default=True, type=NON_NEGATIVE, help="Final epochs without mosaic.")
@click.option("--mosaic", default=1.0, show_default=True, type=PROBABILITY, help="Mosaic probability.")
@click.option(
    "--val-interval",
    default=1,
    show_default=True,
    type=NON_NEGATIVE,
    help="Validate every N epochs (and the last); 0: never.",
)
@click.option("--no-ema", is_flag=True, help="Validate and save the raw weights instead of their EMA.")
@click.option("--seed", default=0, show_default=True, type=NON_NEGATIVE)
@click.option(
    "--mixed-precision",
    type=click.Choice(["mixed_float16", "mixed_bfloat16"]),
    default=None,
    help="For GPUs; slower on CPUs without native float16/bfloat16.",
)
@click.option(
    "--strategy",
    type=click.Choice(["mirrored", "multiworker"]),
    default=None,
    help="tf.distribute strategy (multiworker reads TF_CONFIG).",
)
@click.option(
    "--skip-bad-images", is_flag=True, help="Train without images that cannot be decoded (counted) instead of refusing."
)
@click.option(
    "--weights",
    type=click.Path(exists=True, dir_okay=False),
    help="Start from this detector (.keras, or Ultralytics .pt / .onnx): every layer whose shape fits is loaded; "
    "a class head of another class count starts fresh. Its scale is used.",
)
@click.option("--freeze", type=click.Choice(["backbone"]), default=None, help="Do not train the backbone.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint, same arguments.")
@user_errors
def train(
    data_yaml,
    family,
    scale,
    task,
    activation,
    imgsz,
    epochs,
    batch,
    optimizer,
    lr0,
    schedule,
    warmup_epochs,
    close_mosaic,
    mosaic,
    val_interval,
    no_ema,
    seed,
    mixed_precision,
    strategy,
    skip_bad_images,
    weights,
    freeze,
    out,
    resume,
):
    """Train a detector; writes best.keras and last.keras (their metadata inside), history.json and checkpoints."""
    from tfyolo.training.train_config import TrainConfig
    from tfyolo.training.trainer import Trainer, best_validated, resume_config

    if resume:
        config = resume_config(out)
        click.echo(f"Resuming {out} with its saved arguments (other options are ignored).", err=True)
    else:
        if not data_yaml:
            raise click.UsageError("--data is required (or --resume an existing run).")
        config = TrainConfig(
            data=str(data_yaml),
            out=str(out),
            family=family,
            scale=scale,
            activation=activation,
            imgsz=imgsz,
            epochs=epochs,
            batch=batch,
            optimizer=optimizer,
            lr0=lr0,
            schedule=schedule,
            warmup_epochs=warmup_epochs,
            close_mosaic=close_mosaic,
            mosaic=mosaic,
            val_interval=val_interval,
            ema=not no_ema,
            seed=seed,
            mixed_precision=mixed_precision,
            strategy=strategy,
            skip_bad_images=skip_bad_images,
            init_weights=weights,
            freeze=freeze,
            task=task,
        )
    started = time.perf_counter()
    ensure_writable_folder(config.out)
    trainer = Trainer(config, reporter=TqdmTrainingReporter())
    for note in trainer.train_data.stats.warnings():
        click.echo(f"warning (train): {note}", err=True)
    history = trainer.fit()
    best = best_validated(history)
    summary = (
        f"Best epoch {best['epoch']}: val mAP50 {best['map50']:.3f}, mAP50-95 {best['map50_95']:.3f}."
        if best
        else "No epoch was validated (--val-interval); best.keras is the last epoch."
    )
    saved = f"Saved {Path(out) / 'best.keras'}"
    if trainer.model_config.head == "both":
        saved += (
            f" (both heads; validated on the one-to-many head) and each head alone to convert: "
            f"{Path(out) / 'best_one2one.keras'} (top-k, no NMS), {Path(out) / 'best_one2many.keras'} (NMS)"
        )
    click.echo(f"Done in {time.perf_counter() - started:.0f} s. {summary} {saved}")


@cli.command()
@click.option(
    "--model",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Trained float .keras, or an Ultralytics .pt / .onnx (imported first, cached in OUT/imported).",
)
@click.option("--data", "data_yaml", type=click.Path(), help="data.yaml [default: the model's metadata].")
@click.option("--epochs", default=10, show_default=True, type=AT_LEAST_ONE)
@click.option("--batch", default=QAT_FINE_TUNE["batch"], show_default=True, type=AT_LEAST_ONE)
@click.option(
    "--lr0",
    default=QAT_FINE_TUNE["lr0"],
    show_default=True,
    type=POSITIVE_FLOAT,
    help="Fine-tuning learning rate (AdamW).",
)
@click.option(
    "--mosaic", default=QAT_FINE_TUNE["mosaic"], show_default=True, help="Mosaic probability (off by default for QAT)."
)
@click.option("--staged", is_flag=True, help="Quantize backbone + neck only; keep the head in float.")
@click.option(
    "--preserve",
    type=click.Choice(PRESERVED_IN_QAT),
    default=None,
    help="Keep what `tfyolo compress` made through QAT (tfmot's collaborative schemes): a pruned model's zeros "
    "(prune) or a clustered model's shared values (cluster: every weight stays on one of its layer's centroids, "
    "trained without EMA; a clustered model also converts with PTQ int8 directly).",
)
@click.option(
    "--calibration-images",
    default=QAT_FINE_TUNE["qat_calibration_images"],
    show_default=True,
    type=AT_LEAST_ONE,
    help="Train images that seed the ranges.",
)
@click.option("--seed", default=0, show_default=True, type=NON_NEGATIVE)
@click.option(
    "--force-training-overlap",
    is_flag=True,
    help="Allow train images whose content equals a val image's (the best epoch is chosen on val).",
)
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--resume", is_flag=True, help="Continue the QAT run in --out from its last checkpoint.")
@click.option(
    "--distill",
    is_flag=True,
    help="Learn from the float model's own outputs on the train images instead of their labels: a fifth of the "
    "--calibration-images images held out keeps the best epoch, the start included, so it can only come closer to the "
    "float model. Defaults with it (tfyolo.qat.distillation's, which imports TensorFlow, so written out here): "
    "--batch 4, --lr0 1e-5 (Adam), --calibration-images 100; --epochs as given.",
)
@click.pass_context
@user_errors
def qat(
    context,
    model,
    data_yaml,
    epochs,
    batch,
    lr0,
    mosaic,
    staged,
    preserve,
    calibration_images,
    seed,
    force_training_overlap,
    out,
    resume,
    distill,
):
    """Quantization-aware fine-tuning of a trained float model (tfmot), same trainer as `train`, or by distillation
    from the float model (--distill)."""
    from tfyolo.data.calibration_images import evaluation_image_paths, refuse_training_overlap
    from tfyolo.importers.import_cache import IMPORTED_FOLDER, imported_model, is_importable
    from tfyolo.metadata import find_model_metadata, resolve_data
    from tfyolo.qat.qat_training import trainer_for
    from tfyolo.training.train_config import TrainConfig
    from tfyolo.training.trainer import best_validated, resume_config

    if distill:
        given = {name for name in context.params if context.get_parameter_source(name) != ParameterSource.DEFAULT}
        _distill(model, data_yaml, epochs, seed, force_training_overlap, out, given, context.params)
        return
    if resume:
        config = resume_config(out)
    else:
        if is_importable(model):
            model, _ = imported_model(model, Path(out) / IMPORTED_FOLDER, progress=click.echo)
        metadata = find_model_metadata(model) or {}
        if not metadata.get("imgsz"):
            from tfyolo.models.model_io import load_keras_model

            metadata["imgsz"] = int(load_keras_model(model).input_shape[1])
        settings = dict(QAT_FINE_TUNE, batch=batch, lr0=lr0, mosaic=mosaic, qat_calibration_images=calibration_images)
        data = resolve_data(data_yaml, model)
        refuse_training_overlap(data, evaluation_image_paths(data), force_training_overlap, "tfyolo qat")
        config = TrainConfig(
            data=str(data),
            out=str(out),
            imgsz=metadata["imgsz"],
            epochs=epochs,
            seed=seed,
            ema=preserve != "cluster",
            qat_from=str(model),
            qat_staged=staged,
            qat_preserve=preserve,
            **settings,
        )
    started = time.perf_counter()
    ensure_writable_folder(config.out)
    history = trainer_for(config, reporter=TqdmTrainingReporter()).fit()
    best = best_validated(history)
    if best:
        which = "the seeded start, which no epoch beat" if best["epoch"] == 0 else f"epoch {best['epoch']}"
        click.echo(
            f"QAT done in {time.perf_counter() - started:.0f} s. Best: {which}, val mAP50 "
            f"{best['map50']:.3f}, mAP50-95 {best['map50_95']:.3f} (fake-quant, Keras). Saved "
            f"{Path(out) / 'best.h5'}. Convert it against its float model, which stays the reference: "
            f"`tfyolo convert --model {config.qat_from} --qat-model {Path(out) / 'best.h5'} --recipe fp32 "
            f"--out {Path(out) / 'convert'}` (no calibration needed: the ranges were learned)."
        )


# Options of `tfyolo qat` that belong to the labeled fine-tune: distillation learns no labels (no mosaic), wraps the
# whole model (no --staged, --preserve) and runs minutes, so it starts again rather than resumes.
NOT_WITH_DISTILL = ("mosaic", "staged", "preserve", "resume")


def _distill(model, data_yaml, epochs, seed, force_training_overlap, out, given, params):
    """`tfyolo qat --distill`: the library's distillation job on the train images of the data, the distillation's
    own defaults where the user gave no value."""
    from tfyolo.importers.import_cache import IMPORTED_FOLDER, imported_model, is_importable
    from tfyolo.metadata import resolve_data
    from tfyolo.qat.distillation import DISTILLATION_IMAGES, DistillationConfig, distill_on_data, kept_epoch

    refused = [f"--{name.replace('_', '-')}" for name in NOT_WITH_DISTILL if name in given]
    if refused:
        raise click.UsageError(f"{', '.join(refused)}: options of the labeled fine-tune, not of --distill.")
    started = time.perf_counter()
    if is_importable(model):
        model, _ = imported_model(model, Path(out) / IMPORTED_FOLDER, progress=click.echo)
    data = resolve_data(data_yaml, model)
    defaults = DistillationConfig()
    config = DistillationConfig(
        epochs=epochs,
        learning_rate=params["lr0"] if "lr0" in given else defaults.learning_rate,
        batch=params["batch"] if "batch" in given else defaults.batch,
        seed=seed,
    )
    count = params["calibration_images"] if "calibration_images" in given else DISTILLATION_IMAGES
    ensure_writable_folder(out)
    click.echo(
        f"distilling {model} on up to {count} train images of {data} ({config.holdout:.0%} held out to keep the best "
        f"epoch): {epochs} epoch(s), Adam at {config.learning_rate:g}, batch {config.batch}"
    )

    def report(epoch):
        kept = "best so far" if epoch["best"] else "not kept"
        seconds = f", {epoch['seconds']:.0f} s" if "seconds" in epoch else ""
        click.echo(f"  epoch {epoch['epoch']}/{epochs}: held-out loss {epoch['held_out_loss']:.4f} ({kept}{seconds})")

    history, summary = distill_on_data(model, data, out, config, count, force_training_overlap, report)
    best = kept_epoch(history)
    which = "the seeded start, which no epoch beat" if best["epoch"] == 0 else f"epoch {best['epoch']}"
    best_path = Path(out) / "best.h5"
    click.echo(
        f"QAT by distillation done in {time.perf_counter() - started:.0f} s on {summary['images_used']} images. "
        f"Best: {which}, held-out loss {best['held_out_loss']:.4f} (start {history[0]['held_out_loss']:.4f}). Saved "
        f"{best_path}. Convert it against its float model, which stays the reference: `tfyolo convert --model {model} "
        f"--qat-model {best_path} --recipe fp32 --out {Path(out) / 'convert'}` (no calibration needed: its ranges "
        "were set from the images and kept)."
    )


@cli.command("import")
@click.argument("weights", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The .keras file to write.")
@click.option(
    "--imgsz", type=MODEL_INPUT_SIZE, default=None, help="Input size [default: the checkpoint's training imgsz]."
)
@click.option(
    "--head",
    type=click.Choice(["one2one", "one2many", "both"]),
    default=None,
    help="YOLO26: the head the model ends in: one2one (top-k, no NMS), one2many (NMS) or both (training) "
    "[default: one2one where the file holds it].",
)
@user_errors
def import_command(weights, out, imgsz, head):
    """Import an Ultralytics detector (YOLOv8, YOLO11, YOLO26; .pt checkpoint or .onnx export) as a tfyolo detector,
    no PyTorch.

    Writes OUT with its metadata inside (family, scale, class names, imgsz, head, the source's sha256)."""
    from tfyolo.importers.import_cache import describe_import
    from tfyolo.importers.ultralytics_import import import_weights
    from tfyolo.models.model_io import save_model_atomic

    out = Path(out)
    if out.suffix != ".keras":
        raise click.UsageError(f"--out must end in .keras, received {out.name!r}.")
    ensure_writable_folder(out.parent)
    model, metadata = import_weights(weights, imgsz, head)
    save_model_atomic(model, out, metadata)
    click.echo(
        f"Imported {weights} ({describe_import(metadata)}) into {out}. Calibrate its conversion on its training "
        f"images: `tfyolo convert --model {out} --calibration DATA.yaml ...`."
    )


@cli.command()
@click.option("--model", required=True, type=click.Path(exists=True, dir_okay=False), help="Trained float .keras.")
@click.option("--method", required=True, type=click.Choice(COMPRESSIONS))
@click.option(
    "--clusters", default=16, show_default=True, type=click.IntRange(2, 256), help="Shared values per layer (cluster)."
)
@click.option(
    "--sparsity",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    help="Share of zero weights at the end (prune).",
)
@click.option("--data", "data_yaml", type=click.Path(), help="data.yaml [default: the model's metadata].")
@click.option("--epochs", default=10, show_default=True, type=AT_LEAST_ONE)
@click.option("--batch", default=COMPRESS_FINE_TUNE["batch"], show_default=True, type=AT_LEAST_ONE)
@click.option(
    "--lr0",
    default=COMPRESS_FINE_TUNE["lr0"],
    show_default=True,
    type=POSITIVE_FLOAT,
    help="Fine-tuning learning rate (AdamW).",
)
@click.option("--seed", default=0, show_default=True, type=NON_NEGATIVE)
@click.option(
    "--force-training-overlap",
    is_flag=True,
    help="Allow train images whose content equals a val image's (the best epoch is chosen on val).",
)
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@user_errors
def compress(
    model, method, clusters, sparsity, data_yaml, epochs, batch, lr0, seed, force_training_overlap, out, resume
):
    """Fine-tune a trained float model into clustered (k shared weights per layer) or pruned (sparse) weights.

    Then `tfyolo qat --model OUT/best.keras --preserve prune|cluster` and convert its QAT model with the int8
    recipes; a clustered model also converts with `tfyolo convert --recipe int8` directly (its int8 kernels keep at
    most --clusters values per channel)."""
    from tfyolo.data.calibration_images import evaluation_image_paths, refuse_training_overlap
    from tfyolo.metadata import resolve_data
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.training.train_config import TrainConfig
    from tfyolo.training.trainer import Trainer, best_validated, resume_config

    if resume:
        config = resume_config(out)
    else:
        data = resolve_data(data_yaml, model)
        refuse_training_overlap(data, evaluation_image_paths(data), force_training_overlap, "tfyolo compress")
        config = TrainConfig(
            data=str(data),
            out=str(out),
            imgsz=int(load_keras_model(model).input_shape[1]),
            epochs=epochs,
            seed=seed,
            init_weights=str(model),
            compress=method,
            **dict(COMPRESS_FINE_TUNE, batch=batch, lr0=lr0),
            clusters=clusters,
            sparsity=sparsity,
        )
    ensure_writable_folder(config.out)
    history = Trainer(config, reporter=TqdmTrainingReporter()).fit()
    best = best_validated(history)
    if best:
        click.echo(
            f"Best epoch {best['epoch']}: val mAP50-95 {best['map50_95']:.3f}. Saved {Path(out) / 'best.keras'} "
            f"(plain float, {'clustered' if method == 'cluster' else 'pruned'} weights). Next: "
            + f"`tfyolo qat --model {Path(out) / 'best.keras'} --preserve {method} --out ...`"
            + (
                f" or, with no QAT, `tfyolo convert --model {Path(out) / 'best.keras'} --recipe int8 --out ...`."
                if method == "cluster"
                else "."
            )
        )


def _register_subcommands():
    from tfyolo.cli.bench_bundle import bench_command, bundle_command
    from tfyolo.cli.convert import convert_command
    from tfyolo.cli.evaluate import main as evaluate_command
    from tfyolo.cli.sensitivity import sensitivity_command
    from tfyolo.cli.serve import serve_command, worker_command
    from tfyolo.cli.target import target_command

    cli.add_command(evaluate_command, name="eval")
    cli.add_command(convert_command, name="convert")
    cli.add_command(bench_command, name="bench")
    cli.add_command(bundle_command, name="bundle")
    cli.add_command(sensitivity_command, name="sensitivity")
    cli.add_command(serve_command, name="serve")
    cli.add_command(worker_command, name="worker")
    cli.add_command(target_command, name="target")


_register_subcommands()


def main():
    silence_native_logs()
    cli()


if __name__ == "__main__":
    main()
