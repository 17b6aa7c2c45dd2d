"""QAT benchmark (issue: quantization-aware training) on the PennFudan n model at 320.

1. QAT fine-tune of the float SiLU model (fixed epoch budget), then float vs PTQ int8 vs QAT int8 on val.
2. The same for a ReLU variant: initialized from the SiLU weights and fine-tuned in float (cheaper than a second
   from-scratch run), then PTQ int8 and QAT int8; latency of fp32/int8 for both activations.

Usage: python -m benchmarks.bench_qat [--qat-epochs 10] [--relu-epochs 30] [--skip-relu]
"""

import time

import click

from benchmarks.common import PENNFUDAN, WORK, machine, markdown_table, require_dataset, write_results


def qat_finetune(float_model, data, out, epochs, batch, seed=0):
    from tfyolo.console import TqdmTrainingReporter
    from tfyolo.qat.qat_training import trainer_for
    from tfyolo.training.train_config import TrainConfig

    config = TrainConfig(
        data=str(data),
        out=str(out),
        imgsz=320,
        epochs=epochs,
        batch=batch,
        optimizer="adamw",
        lr0=1e-4,
        warmup_epochs=0.0,
        mosaic=0.0,
        close_mosaic=0,
        qat_from=str(float_model),
        qat_calibration_images=64,
        seed=seed,
    )
    started = time.perf_counter()
    history = trainer_for(config, reporter=TqdmTrainingReporter()).fit()
    return history, time.perf_counter() - started


def compare(float_model, qat_model, data, name):
    from tfyolo.console import TqdmProgress
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec

    spec = JobSpec(
        model=str(float_model),
        recipes=("fp32", "int8"),
        calibration=str(data),
        data=str(data),
        name=name,
        qat_model=str(qat_model),
    )
    report = run_job(spec, WORK / name, progress=TqdmProgress())
    return {row["recipe"]: row for row in report.rows}


@click.command()
@click.option("--float-model", default=str(WORK / "pennfudan_n_320" / "best.keras"), show_default=True)
@click.option("--qat-epochs", default=10, show_default=True)
@click.option("--relu-epochs", default=30, show_default=True)
@click.option("--batch", default=8, show_default=True)
@click.option("--skip-relu", is_flag=True)
def main(float_model, qat_epochs, relu_epochs, batch, skip_relu):
    data = require_dataset(PENNFUDAN)
    results = {"machine": machine(), "qat_epochs": qat_epochs, "variants": {}}
    from tfyolo.training.trainer import best_validated

    variants = [("silu", float_model, 0.0)]
    if not skip_relu:
        from tfyolo.console import TqdmTrainingReporter
        from tfyolo.training.train_config import TrainConfig
        from tfyolo.training.trainer import Trainer

        relu_out = WORK / "pennfudan_n_320_relu"
        started = time.perf_counter()
        Trainer(
            TrainConfig(
                data=str(data),
                out=str(relu_out),
                imgsz=320,
                epochs=relu_epochs,
                batch=batch,
                activation="relu",
                init_weights=float_model,
                lr0=0.001,
                warmup_epochs=1.0,
                close_mosaic=5,
                val_interval=5,
            ),
            reporter=TqdmTrainingReporter(),
        ).fit()
        variants.append(("relu", str(relu_out / "best.keras"), time.perf_counter() - started))
    for activation, model, float_seconds in variants:
        history, qat_seconds = qat_finetune(model, data, WORK / f"qat_pennfudan_{activation}", qat_epochs, batch)
        rows = compare(model, WORK / f"qat_pennfudan_{activation}" / "best.h5", data, f"pennfudan_{activation}")
        results["variants"][activation] = {
            "float_model": model,
            "float_finetune_seconds": float_seconds,
            "qat_seconds": qat_seconds,
            "qat_keras_best_map50_95": best_validated(history)["map50_95"],
            "rows": rows,
        }
    table_rows = []
    for activation, variant in results["variants"].items():
        for recipe in ("float", "fp32", "int8", "qat_int8", "qat_int8_int8io"):
            row = variant["rows"].get(recipe)
            if row:
                table_rows.append(
                    {
                        "activation": activation,
                        "model": recipe,
                        "map50_95": row["map50_95"],
                        "map50": row["map50"],
                        "delta": row["delta_map50_95"],
                        "latency": row["latency_ms_p50"],
                        "full_integer": row["full_integer"],
                        "error": row["error"],
                    }
                )
    results["table"] = table_rows
    markdown = "\n".join(
        [
            "# QAT benchmark: PennFudan n @ 320 (val), float vs PTQ int8 vs QAT int8",
            "",
            f"Machine: {results['machine']}",
            "",
            f"QAT: {qat_epochs} epochs, AdamW lr 1e-4, no mosaic, ranges seeded from 64 train images.",
            "",
            markdown_table(
                table_rows,
                [
                    ("activation", "activation", None),
                    ("model", "model", None),
                    ("map50_95", "mAP50-95", "{:.4f}"),
                    ("map50", "mAP50", "{:.4f}"),
                    ("delta", "delta vs float (pt)", "{:+.2f}"),
                    ("latency", "p50 ms (2 thr)", "{:.2f}"),
                    ("full_integer", "full int", None),
                    ("error", "error", None),
                ],
            ),
            "",
            "Time spent: "
            + ", ".join(
                f"{a}: QAT {v['qat_seconds']:.0f} s"
                + (f", ReLU float fine-tune {v['float_finetune_seconds']:.0f} s" if v["float_finetune_seconds"] else "")
                for a, v in results["variants"].items()
            ),
            "",
            "The ReLU model starts from the SiLU model's weights and is fine-tuned in float before PTQ/QAT.",
        ]
    )
    write_results("qat_pennfudan", results, markdown)
    click.echo(markdown)


if __name__ == "__main__":
    main()
