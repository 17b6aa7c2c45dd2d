"""Non-uniform and adaptive quantization (issue 14).

pennfudan: cluster_int8 (16 clusters per layer, fine-tuned, cluster-preserving QAT, int8; the PTQ int8 of the
clustered float model beside it) and prune_int8 (50% sparsity by global magnitude, fine-tuned, sparsity-preserving
QAT, int8) on PennFudan n@320 from the imported Ultralytics YOLOv8n, against its plain int8: mAP50-95 drop, file
size, gzip size, what the int8 kernels hold, latency interleaved in one run. No stage validates on the val split
the rows are scored on: each takes its last epoch.

mixed: int8 / int16 activations on the default synthetic model, where plain int8 loses the most.

Candidates, converted, evaluated against the float model and timed interleaved in one `run_job`:
int8 (TFLiteConverter), int8_aeq_int8io (ai-edge-quantizer, all int8), int8_int16act{1,2,4}_int8io
(ai-edge-quantizer with the 1/2/4 blocks the sensitivity ranking puts worst at 16-bit activations), int16x8
(every activation 16-bit), fp32.
Sizes are reported raw and gzip-compressed.

Usage: python -m benchmarks.bench_compress [--part all|mixed|pennfudan] [--cluster-epochs 5] [--prune-epochs 10]
       [--qat-epochs 3]
"""

import shutil
import time
from pathlib import Path

import click

from benchmarks.common import PENNFUDAN, ROOT, WORK, machine, markdown_table, require_dataset, write_results

DEFAULT_MODEL = ROOT / "build" / "default" / "best.keras"
STEPS = (1, 2, 4)


def kernel_entropy_bits(content):
    """Bits per weight an entropy coder would need for the int8 convolution kernels: each kernel's value entropy,
    weighted by its size."""
    import numpy as np

    from tfyolo.quantization.weight_stats import int8_kernels

    bits, weights = 0.0, 0
    for _, kernel in int8_kernels(content):
        _, counts = np.unique(kernel, return_counts=True)
        share = counts / counts.sum()
        bits += float(-(share * np.log2(share)).sum()) * counts.sum()
        weights += int(counts.sum())
    return bits / weights


def without_curves(report):
    """The job report without its per-class PR curves (101 points per class per row): the plots hold those."""
    return dict(report, rows=[{k: v for k, v in row.items() if k != "pr_curves"} for row in report["rows"]])


@click.command()
@click.option("--model", default=str(DEFAULT_MODEL), show_default=True)
@click.option("--calibration", default=str(ROOT / "calibration_data"), show_default=True)
@click.option("--part", type=click.Choice(["all", "mixed", "pennfudan"]), default="all", show_default=True)
@click.option("--cluster-epochs", default=5, show_default=True, help="Clustering fine-tune epochs (PennFudan).")
@click.option("--prune-epochs", default=10, show_default=True, help="Pruning fine-tune epochs (PennFudan).")
@click.option("--qat-epochs", default=3, show_default=True, help="Cluster- / sparsity-preserving QAT epochs.")
def main(model, calibration, part, cluster_epochs, prune_epochs, qat_epochs):
    if part in ("all", "pennfudan"):
        pennfudan({"cluster": cluster_epochs, "prune": prune_epochs}, qat_epochs)
    if part in ("all", "mixed"):
        mixed(model, calibration)


def mixed(model, calibration):
    from tfyolo.console import TqdmProgress
    from tfyolo.jobs.auto_session import AutoSession
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec
    from tfyolo.quantization.aeq import block_pattern
    from tfyolo.quantization.recipe import Recipe
    from tfyolo.quantization.sensitivity import layer_sensitivity
    from tfyolo.quantization.weight_stats import gzip_size

    if not Path(model).is_file():
        raise SystemExit(f"{model} not found: `make train` builds the default model.")
    out = WORK / "compress_default"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    session = AutoSession(model, calibration, None, "val", 100, 2, False, TqdmProgress())
    ranking = layer_sensitivity(session.model, session.images[:32], session.images[:8], session.family)
    worst = [entry["layer"] for entry in ranking[: max(STEPS)]]
    recipe_paths = []
    for count in STEPS:
        recipe = Recipe(
            name=f"int8_int16act{count}_int8io",
            mode="int8",
            io_type="int8",
            quantizer="ai_edge_quantizer",
            int16_layers=tuple(block_pattern(layer) for layer in worst[:count]),
            description=f"int8, 16-bit activations in the {count} worst block(s)",
        )
        path = out / f"{recipe.name}.yaml"
        path.write_text(recipe.to_yaml())
        recipe_paths.append(str(path))
    aeq = out / "int8_aeq_int8io.yaml"
    aeq.write_text(Recipe(name="int8_aeq_int8io", mode="int8", io_type="int8", quantizer="ai_edge_quantizer").to_yaml())
    spec = JobSpec(
        model=model,
        recipes=("fp32", "int8", str(aeq), *recipe_paths, "int16x8"),
        calibration=calibration,
        name="default",
    )
    report = run_job(spec, out, progress=TqdmProgress())
    rows = []
    int8 = next(row for row in report.rows if row["recipe"] == "int8")
    for row in report.rows:
        if row["recipe"] == "float":
            continue
        content = Path(row["path"]).read_bytes()
        recovered = None
        if row["recipe"] not in ("int8", "fp32") and int8["delta_map50_95"] < 0:
            recovered = (row["delta_map50_95"] - int8["delta_map50_95"]) / -int8["delta_map50_95"]
        rows.append(
            {
                "recipe": row["recipe"],
                "delta": row["delta_map50_95"],
                "recovered": recovered,
                "size": row["size_bytes"],
                "gzip": gzip_size(content),
                "latency": row["latency_ms_p50"],
                "latency_vs_int8": row["latency_ms_p50"] / int8["latency_ms_p50"],
                "full_integer": row["full_integer"],
            }
        )
    columns = [
        ("recipe", "recipe", None),
        ("delta", "mAP50-95 vs float (pt)", "{:+.2f}"),
        ("recovered", "share of int8's drop recovered", "{:.0%}"),
        ("size", "size (bytes)", "{:,}"),
        ("gzip", "gzip -9 (bytes)", "{:,}"),
        ("latency", "p50 ms (2 thr, interleaved)", "{:.3f}"),
        ("latency_vs_int8", "latency / int8", "{:.2f}"),
        ("full_integer", "integer only", None),
    ]
    float_map = report.rows[0]["map50_95"]
    load = report.latency["load_average"]
    markdown = "\n".join(
        [
            "# Mixed int8 / int16 activations on the default synthetic model (128 px, 3 classes)",
            "",
            f"Float mAP50-95 {float_map:.4f}; 16-bit blocks, worst first: {', '.join(worst)}.",
            "",
            markdown_table(rows, columns),
            "",
            "Calibrated on calibration_data/ (100 images), evaluated on the synthetic val split; latency from one "
            f"interleaved run (load average {load[0]:.2f} -> {load[1]:.2f}).",
        ]
    )
    write_results(
        "compress_default",
        {"machine": machine(), "rows": rows, "worst_layers": worst, "report": without_curves(report.to_dict())},
        markdown,
    )
    print(markdown)


def pennfudan(epochs, qat_epochs):
    """cluster_int8 and prune_int8 on PennFudan n@320, from the imported Ultralytics model (bench-import's).
    epochs: {"cluster": fine-tune epochs, "prune": fine-tune epochs}."""
    from tfyolo.benchmark import interleaved_latency
    from tfyolo.console import TqdmProgress, TqdmTrainingReporter
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.evaluation.model_evaluation import evaluate_models
    from tfyolo.evaluation.runners import KerasRunner, TFLiteRunner
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.qat.qat_training import trainer_for
    from tfyolo.quantization.weight_stats import gzip_size, kernel_stats
    from tfyolo.training.train_config import TrainConfig
    from tfyolo.training.trainer import Trainer

    base = WORK / "import_pennfudan_yolov8" / "ul_penn.keras"
    if not base.is_file():
        raise SystemExit(f"{base} not found: `make bench-import` imports the model this part starts from.")
    data = str(require_dataset(PENNFUDAN))
    out = WORK / "compress_pennfudan"
    shutil.rmtree(out, ignore_errors=True)
    common = dict(
        data=data,
        imgsz=320,
        batch=8,
        optimizer="adamw",
        lr0=1e-4,
        warmup_epochs=0.0,
        mosaic=0.0,
        close_mosaic=0,
        val_interval=0,
    )
    artifacts, seconds = {}, {}
    plain = run_job(
        JobSpec(model=str(base), recipes=("int8",), calibration=data, evaluate=False, name="plain"),
        out / "plain",
        progress=TqdmProgress(),
    )
    artifacts["int8"] = Path(plain.artifacts[0].path)
    for method in ("cluster", "prune"):
        started = time.perf_counter()
        Trainer(
            TrainConfig(
                out=str(out / method),
                epochs=epochs[method],
                ema=False,
                init_weights=str(base),
                compress=method,
                clusters=16,
                sparsity=0.5,
                **common,
            ),
            reporter=TqdmTrainingReporter(),
        ).fit()
        compressed = out / method / "best.keras"
        # Structure-preserving QAT (tfmot's cluster- or sparsity-preserving scheme), then int8 from its ranges.
        trainer_for(
            TrainConfig(
                out=str(out / f"{method}_qat"),
                epochs=qat_epochs,
                qat_from=str(compressed),
                qat_preserve=method,
                ema=method != "cluster",
                **common,
            ),
            reporter=TqdmTrainingReporter(),
        ).fit()
        seconds[method] = time.perf_counter() - started
        # The clustered float model's PTQ int8 too: per-channel int8 keeps its <= 16 values per channel as well.
        job = JobSpec(
            model=str(compressed),
            recipes=("int8",) if method == "cluster" else ("fp32",),
            calibration=data,
            qat_model=str(out / f"{method}_qat" / "last.h5"),
            evaluate=False,
            name=method,
        )
        report = run_job(job, out / f"{method}_int8", progress=TqdmProgress())
        paths = {artifact.name: Path(artifact.path) for artifact in report.artifacts}
        artifacts[f"{method}_int8"] = paths["qat_int8"]
        if method == "cluster":
            artifacts["cluster_ptq_int8"] = paths["int8"]
    dataset = DetectionDataset.from_data_yaml(data, "val")
    reference = KerasRunner(load_keras_model(base), description=str(base))
    runners = {name: TFLiteRunner(path) for name, path in artifacts.items()}
    scored, _, float_evaluation = evaluate_models(runners, dataset, "val", reference)
    contents = {name: path.read_bytes() for name, path in artifacts.items()}
    latency = interleaved_latency(contents, num_threads=2, rounds=15)
    plain_gzip = gzip_size(contents["int8"])
    rows = []
    for name, content in contents.items():
        stats = kernel_stats(content)
        rows.append(
            {
                "recipe": name,
                "map50_95": scored[name]["map50_95"],
                "delta": scored[name]["delta_map50_95"],
                "size": len(content),
                "gzip": gzip_size(content),
                "gzip_vs_int8": gzip_size(content) / plain_gzip,
                "values": stats["max_values_per_channel"],
                "sparsity": stats["sparsity"],
                "latency": latency["models"][name]["latency_ms_p50"],
                "entropy_bits": kernel_entropy_bits(content),
                "fine_tune_seconds": seconds.get(name.removesuffix("_int8")),
            }
        )
    columns = [
        ("recipe", "recipe", None),
        ("map50_95", "mAP50-95", "{:.4f}"),
        ("delta", "vs float (pt)", "{:+.2f}"),
        ("size", "size (bytes)", "{:,}"),
        ("gzip", "gzip -9 (bytes)", "{:,}"),
        ("gzip_vs_int8", "gzip / int8's", "{:.2f}"),
        ("values", "most int8 values in a channel", None),
        ("sparsity", "int8 zeros", "{:.1%}"),
        ("entropy_bits", "kernel entropy (bits/weight)", "{:.2f}"),
        ("latency", "p50 ms (2 thr, interleaved)", "{:.2f}"),
        ("fine_tune_seconds", "fine-tune + QAT s", "{:.0f}"),
    ]
    markdown = "\n".join(
        [
            "# Clustering and pruning on PennFudan n@320 (the imported Ultralytics YOLOv8n)",
            "",
            f"Float mAP50-95 {float_evaluation.metrics['map50_95']:.4f}. cluster: 16 clusters per layer, "
            f"{epochs['cluster']} epochs, then {qat_epochs} epochs of cluster-preserving QAT, then int8 "
            f"(cluster_ptq_int8: the clustered float model's PTQ int8). prune: 50% sparsity (global magnitude, "
            f"polynomial decay), {epochs['prune']} epochs, then {qat_epochs} epochs of sparsity-preserving QAT, "
            "then int8. Every stage keeps its last epoch (none validates on the val split scored here).",
            "",
            markdown_table(rows, columns),
            "",
            "Kernel entropy: the mean over int8 convolution kernels of the entropy of their values, what an entropy "
            "coder would need; gzip -9 spends more on such near-random symbols.",
        ]
    )
    write_results(
        "compress_pennfudan",
        {"machine": machine(), "rows": rows, "epochs": epochs, "qat_epochs": qat_epochs},
        markdown,
    )
    print(markdown)


if __name__ == "__main__":
    main()
