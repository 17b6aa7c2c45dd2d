"""QAT by distillation on an 80-class model: how far each optimizer setting moves the held-out distillation loss,
and what the int8 of the kept model scores on images no COCO model has seen.

For the shared COCO model of `--family`, calibrated (and distilled) on 100 coco128 images drawn with `--seed`, a
fifth of them held out: per setting (`optimizer:rate:epochs`; epochs 0 is the seeded start), the history of
`tfyolo.qat.distillation` and the mAP50-95 of the kept model's int8 (TFLiteConverter from its ranges, as the search's
QAT candidate converts) on coco_val150, beside the built-in int8 of the same calibration draw.

Usage: python -m benchmarks.study_distillation [--family yolo11n] [--seed 0] [--settings adam:1e-5:3,sgd:1e-4:5]
Results: benchmarks/results/coco_distillation.{json,md} (YOLO11n), coco_distillation_<family>.{json,md} (others)
"""

import time

import click

from benchmarks.bench_coco import CALIBRATION, SCORING, family_model
from benchmarks.common import WORK, machine, markdown_table, seeded_recipes, write_results

DEFAULT_SETTINGS = "adam:0:0,adam:1e-5:3,adam:3e-6:8,adam:1e-4:10,sgd:1e-4:5,sgd:1e-3:5"


def setting_row(family, model, images, seed, setting):
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec
    from tfyolo.qat.distillation import DistillationConfig, distill_qat_model

    optimizer, rate, epochs = setting.split(":")
    config = DistillationConfig(epochs=int(epochs), learning_rate=float(rate), optimizer=optimizer, seed=seed)
    work = WORK / "coco_distillation" / family / f"seed{seed}" / setting.replace(":", "_")
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    history = distill_qat_model(model, images, work / "distilled.h5", config, progress=print)
    seconds = time.perf_counter() - started
    spec = JobSpec(
        model=str(model),
        qat_model=str(work / "distilled.h5"),
        recipes=seeded_recipes(work, seed, ("int8",)),
        calibration=str(CALIBRATION),
        data=str(SCORING),
        name=family,
    )
    rows = {row["recipe"]: row for row in run_job(spec, work / "job").rows}
    return {
        "setting": setting,
        "history": history,
        "distill_seconds": seconds,
        "start_held_out_loss": history[0]["held_out_loss"],
        "kept_held_out_loss": min(row["held_out_loss"] for row in history),
        "worst_held_out_loss": max(row["held_out_loss"] for row in history),
        "qat_int8_delta": rows["qat_int8"]["delta_map50_95"],
        "int8_delta": rows["int8"]["delta_map50_95"],
    }


@click.command()
@click.option("--family", default="yolo11n", show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--settings", default=DEFAULT_SETTINGS, show_default=True)
def main(family, seed, settings):
    from tfyolo.data.calibration_images import load_calibration_images

    model, _ = family_model(family)
    images, _ = load_calibration_images(str(CALIBRATION), 640, 100, seed=seed)
    rows = [setting_row(family, model, images, seed, setting) for setting in settings.split(",")]
    columns = [
        ("setting", "setting (optimizer:rate:epochs)", None),
        ("start_held_out_loss", "held-out loss: start", "{:.4f}"),
        ("kept_held_out_loss", "kept", "{:.4f}"),
        ("worst_held_out_loss", "worst epoch", "{:.4f}"),
        ("distill_seconds", "distill s", "{:.0f}"),
        ("qat_int8_delta", "kept model's int8 vs float (pt)", "{:+.2f}"),
        ("int8_delta", "built-in int8 vs float (pt)", "{:+.2f}"),
    ]
    table = markdown_table(rows, columns)
    text = "\n".join(
        [
            f"# QAT by distillation, COCO {family}: 100 coco128 images (seed {seed}), a fifth held out; "
            "scored on coco_val150",
            "",
            table,
            "",
            "The kept model is the start unless an epoch lowered the held-out loss. 150 images are noisy: one int8 "
            "drop on them carries a standard error of 0.5 to 1 point (`python -m benchmarks.study_image_spread`). "
            "Command: `python -m benchmarks.study_distillation`.",
        ]
    )
    name = "coco_distillation" if family == "yolo11n" else f"coco_distillation_{family}"
    write_results(name, {"machine": machine(), "family": family, "seed": seed, "rows": rows}, text)


if __name__ == "__main__":
    main()
