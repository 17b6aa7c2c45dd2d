"""What starting from imported weights buys (issue: bring your own YOLOv8): PennFudan n at 320, the same short
budget from scratch and from Ultralytics weights brought in with `tfyolo import`:

- scratch: random initialization, as `tfyolo train`;
- nudenet: a third-party YOLOv8n for another task (18 body-part classes), class head re-initialized: transfer;
- pennfudan_ul: Ultralytics' own YOLOv8n trained on PennFudan's train split: a head start on the same data, once
  at the default learning rate and once at a tenth of it (a converged model restarted at full rate is knocked
  back before it recovers).

Usage: python -m benchmarks.bench_finetune [--epochs 10]
"""

import shutil
import time

import click

from benchmarks.common import PENNFUDAN, ROOT, WORK, machine, markdown_table, require_dataset, write_results

WEIGHTS = ROOT.parent / "shared" / "weights"
# name: (weights, lr0); lr0 None is the "auto" rate, 0.002 for AdamW here.
SOURCES = {
    "scratch": (None, None),
    "nudenet": (WEIGHTS / "nudenet_320n" / "320n.onnx", None),
    "pennfudan_ul": (WEIGHTS / "ultralytics_yolov8n_pennfudan" / "best.pt", None),
    "pennfudan_ul lr0 0.0002": (WEIGHTS / "ultralytics_yolov8n_pennfudan" / "best.pt", 0.0002),
}


@click.command()
@click.option("--epochs", default=10, show_default=True)
@click.option("--batch", default=8, show_default=True)
def main(epochs, batch):
    from tfyolo.console import TqdmTrainingReporter
    from tfyolo.training.train_config import TrainConfig
    from tfyolo.training.trainer import Trainer, best_validated

    data = require_dataset(PENNFUDAN)
    rows = []
    for name, (weights, lr0) in SOURCES.items():
        if weights is not None and not weights.is_file():
            raise SystemExit(f"{weights} not found: this benchmark needs ../shared/weights beside the project.")
        out = WORK / f"finetune_{name.replace(' ', '_')}"
        shutil.rmtree(out, ignore_errors=True)
        config = TrainConfig(
            data=str(data),
            out=str(out),
            imgsz=320,
            epochs=epochs,
            batch=batch,
            lr0=lr0,
            val_interval=1,
            warmup_epochs=1.0,
            close_mosaic=2,
            init_weights=str(weights) if weights else None,
        )
        started = time.perf_counter()
        history = Trainer(config, reporter=TqdmTrainingReporter()).fit()
        best = best_validated(history)
        rows.append(
            {
                "start": name,
                "epochs": epochs,
                "map50_95": best["map50_95"],
                "map50": best["map50"],
                "best_epoch": best["epoch"],
                "first_epoch_map50_95": history[0]["map50_95"],
                "seconds": time.perf_counter() - started,
            }
        )
        click.echo(f"{name}: mAP50-95 {best['map50_95']:.4f} (epoch {best['epoch']})", err=True)
    columns = [
        ("start", "start from", None),
        ("map50_95", "best val mAP50-95", "{:.4f}"),
        ("map50", "mAP50", "{:.4f}"),
        ("best_epoch", "best epoch", None),
        ("first_epoch_map50_95", "after epoch 1", "{:.4f}"),
        ("seconds", "seconds", "{:.0f}"),
    ]
    markdown = "\n".join(
        [
            f"# Fine-tuning from imported weights vs from scratch: PennFudan n at 320, {epochs} epochs, batch {batch}",
            "",
            markdown_table(rows, columns),
            "",
            "nudenet: a YOLOv8n for 18 other classes, imported from its ONNX export (class head re-initialized); "
            "pennfudan_ul: Ultralytics' YOLOv8n trained 60 epochs on the same train split, imported from best.pt; "
            "the lr0 0.0002 row restarts it at a tenth of the auto rate.",
        ]
    )
    write_results("finetune_pennfudan", {"machine": machine(), "rows": rows}, markdown)


if __name__ == "__main__":
    main()
