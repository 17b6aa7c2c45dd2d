"""Embedded targets without the device, on the imported Ultralytics PennFudan models of every family: per recipe
and input size, mAP50-95 (tfyolo-eval), Vela's Ethos-U55-128 and U65-256 estimates (time, SRAM, NPU share),
TFLite Micro parity and arena size, beside the same Vela and TFLite Micro runs on Ultralytics' own int8 export of
the same weights; and `convert --auto --target ethos-u55-128 --max-drop 0.5`.

Usage: python -m benchmarks.bench_targets [--family yolov8 --family yolo11] [--auto-qat-epochs 0]
Results: benchmarks/results/targets_pennfudan.{json,md}
"""

from pathlib import Path

import click

from benchmarks.bench_import import SOURCES, family_weights, fresh_work
from benchmarks.common import PENNFUDAN, RESULTS, load_json, machine, markdown_table, require_dataset, write_results

NPUS = ("ethos-u55-128", "ethos-u65-256")
SIZES = (320, 256)
RECIPES = ("int8", "int8_int8io")
# ai-edge-quantizer's int8 (int8 I/O: it quantizes the graph's input and outputs), the --auto search's second
# candidate: YOLO26's one-to-one head needs it (TFLiteConverter's int8 loses 5.6 pt there).
AEQ_RECIPE = dict(name="int8_aeq_int8io", mode="int8", quantizer="ai_edge_quantizer", io_type="int8")
AUTO_TARGET = "ethos-u55-128"
AUTO_MAX_DROP = 0.5
GOALS = {"auto_within": AUTO_MAX_DROP, "auto_u55_ratio": 0.8}


@click.command()
@click.option("--family", "families", multiple=True, type=click.Choice(sorted(SOURCES)))
@click.option(
    "--auto-qat-epochs", default=0, show_default=True, type=click.IntRange(0, 100), help="The auto search's QAT."
)
def main(families, auto_qat_epochs):
    """Measures `families` (default: all); the other families' rows of an earlier run are kept in the results, so one
    family can be measured again alone."""
    families = families or list(SOURCES)
    rows, auto_rows = kept_rows(families)
    for family in families:
        family_rows, auto_row = family_targets(family, auto_qat_epochs)
        rows += family_rows
        auto_rows.append(auto_row)
    order = list(SOURCES)
    rows.sort(key=lambda row: order.index(row["family"]))
    auto_rows.sort(key=lambda row: order.index(row["family"]))
    report(rows, auto_rows, auto_qat_epochs)


def kept_rows(families):
    """(rows, auto rows) of the families an earlier run measured and this one does not."""
    path = RESULTS / "targets_pennfudan.json"
    if not path.is_file():
        return [], []
    earlier = load_json(path)
    return (
        [row for row in earlier["rows"] if row["family"] not in families],
        [row for row in earlier["auto"] if row["family"] not in families],
    )


def family_targets(family, auto_qat_epochs):
    from tfyolo.console import TqdmProgress
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.evaluation.model_evaluation import evaluate_models
    from tfyolo.evaluation.runners import TFLiteRunner
    from tfyolo.importers.ultralytics_import import import_weights
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec
    from tfyolo.models.model_io import save_model_atomic

    data = require_dataset(PENNFUDAN)
    weights, prefix = family_weights(family)
    work = fresh_work(f"targets_{family}")
    rows = []
    for size in SIZES:
        source = work / f"ul_penn_{size}.keras"
        model, metadata = import_weights(weights / "best.pt", input_size=size)
        save_model_atomic(model, source, dict(metadata, data=str(data)))
        spec = JobSpec(
            model=str(source),
            recipes=(*RECIPES, aeq_recipe(work)),
            calibration=str(data),
            data=str(data),
            name=f"{family}_{size}",
        )
        job = run_job(spec, work / str(size), progress=TqdmProgress())
        float_row = next(row for row in job.rows if row["recipe"] == "float")
        for row in job.rows:
            if row["recipe"] == "float":
                continue
            if row.get("error"):
                raise SystemExit(f"{family} {row['recipe']} at {size}: {row['error']}")
            rows.append(
                target_row(family, size, f"tfyolo {row['recipe']}", Path(row["path"]), row["map50_95"], float_row)
            )
    ul_int8 = weights / f"{prefix}_int8.tflite"
    dataset = DetectionDataset.from_data_yaml(data, "val")
    scored, _, _ = evaluate_models({"ultralytics int8": TFLiteRunner(ul_int8)}, dataset, "val")
    rows.append(target_row(family, 320, "ultralytics int8", ul_int8, scored["ultralytics int8"]["map50_95"], None))
    auto_row = auto_target(family, work, data, auto_qat_epochs, rows)
    return rows, auto_row


def aeq_recipe(work):
    from tfyolo.quantization.recipe import Recipe

    path = work / f"{AEQ_RECIPE['name']}.yaml"
    path.write_text(Recipe(**AEQ_RECIPE).to_yaml())
    return str(path)


def target_row(family, size, artifact, path, map50_95, float_row):
    from tfyolo.bundle import golden_inputs
    from tfyolo.targets.npu_target import NpuTarget
    from tfyolo.targets.target_check import check_targets

    inputs = golden_inputs(path, str(PENNFUDAN), 1)
    report, _ = check_targets(path.read_bytes(), path.stem, [NpuTarget(npu) for npu in NPUS], inputs)
    row = {
        "family": family,
        "size": size,
        "artifact": artifact,
        "path": str(path),
        "map50_95": map50_95,
        "delta_vs_float": None if float_row is None else 100 * (map50_95 - float_row["map50_95"]),
        "mcu_parity": report["mcu"]["parity"],
        "mcu_steps": max(report["mcu"]["steps_vs_reference"].values(), default=None),
        "mcu_arena_kib": report["mcu"]["arena_bytes"] / 1024,
        "targets": report,
    }
    for npu in NPUS:
        estimate = report["npu"][npu]
        key = npu.replace("ethos-", "").replace("-", "_")
        row[f"{key}_ms"] = estimate["inference_ms"]
        row[f"{key}_sram_kib"] = estimate["sram_kib"]
        row[f"{key}_npu_share"] = 100 * estimate["npu_share"]
    return row


def auto_target(family, work, data, auto_qat_epochs, rows):
    from tfyolo.console import TqdmProgress
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec

    spec = JobSpec(
        model=str(work / "ul_penn_320.keras"),
        auto_max_drop=AUTO_MAX_DROP,
        target=AUTO_TARGET,
        auto_qat_epochs=auto_qat_epochs,
        calibration=str(data),
        data=str(data),
    )
    job = run_job(spec, work / "auto", progress=TqdmProgress())
    chosen = job.auto["chosen"]
    ul = next(row for row in rows if row["family"] == family and row["artifact"] == "ultralytics int8")
    return {
        "family": family,
        "chosen": chosen and chosen["recipe"],
        "delta_vs_float": chosen and chosen["delta_map50_95"],
        "u55_128_ms": chosen and chosen["target_ms"],
        "ul_u55_128_ms": ul["u55_128_ms"],
        "ratio_vs_ul": chosen and chosen["target_ms"] / ul["u55_128_ms"],
        "candidates": job.auto["candidates"],
    }


def report(rows, auto_rows, auto_qat_epochs):
    columns = [
        ("family", "family", None),
        ("size", "px", None),
        ("artifact", "artifact", None),
        ("map50_95", "mAP50-95", "{:.4f}"),
        ("delta_vs_float", "vs float (pt)", "{:+.2f}"),
        ("u55_128_ms", "U55-128 est. ms", "{:.2f}"),
        ("u55_128_npu_share", "U55 ops on NPU %", "{:.1f}"),
        ("u55_128_sram_kib", "U55 SRAM KiB", "{:.0f}"),
        ("u65_256_ms", "U65-256 est. ms", "{:.2f}"),
        ("u65_256_sram_kib", "U65 SRAM KiB", "{:.0f}"),
        ("mcu_parity", "TFLM parity", None),
        ("mcu_steps", "TFLM steps vs LiteRT ref", None),
        ("mcu_arena_kib", "TFLM arena KiB", "{:.0f}"),
    ]
    auto_columns = [
        ("family", "family", None),
        ("chosen", f"--auto --target {AUTO_TARGET} chose", None),
        ("delta_vs_float", "vs float (pt)", "{:+.2f}"),
        ("u55_128_ms", "U55-128 est. ms", "{:.2f}"),
        ("ul_u55_128_ms", "Ultralytics int8 est. ms", "{:.2f}"),
        ("ratio_vs_ul", "ratio", "{:.2f}"),
    ]
    tfyolo_int8 = [row for row in rows if row["artifact"].startswith("tfyolo")]
    goals = [
        (
            "tfyolo int8 with int8 I/O: 100% of operators on the NPU",
            "; ".join(
                f"{row['family']}@{row['size']} {row['artifact'][len('tfyolo ') :]}: {row['u55_128_npu_share']:.1f}%"
                for row in tfyolo_int8
                if row["artifact"].endswith("_int8io")
            ),
        ),
        (
            f"--auto --target within {AUTO_MAX_DROP} pt of float, <= {GOALS['auto_u55_ratio']}x Ultralytics' U55 time",
            "; ".join(
                f"{row['family']}: {row['chosen']} {row['delta_vs_float']:+.2f} pt, {row['ratio_vs_ul']:.2f}x"
                if row["chosen"]
                else f"{row['family']}: none within budget"
                for row in auto_rows
            ),
        ),
        (
            "TFLite Micro parity (0 steps vs LiteRT's reference kernels) for every tfyolo int8 artifact",
            "; ".join(f"{row['family']}@{row['size']} {row['artifact']}: {row['mcu_steps']}" for row in tfyolo_int8),
        ),
    ]
    ul_notes = [
        row["targets"]["mcu"]
        for row in rows
        if row["artifact"] == "ultralytics int8" and not row["targets"]["mcu"]["parity"]
    ]
    markdown = "\n".join(
        [
            "# Embedded targets: Vela's Ethos-U estimates and TFLite Micro, tfyolo vs Ultralytics' int8 (PennFudan)",
            "",
            markdown_table(rows, columns),
            "",
            markdown_table(auto_rows, auto_columns),
            "",
            markdown_table(
                [{"goal": goal, "measured": value} for goal, value in goals],
                [("goal", "goal", None), ("measured", "measured", None)],
            ),
            "",
            "mAP50-95 by tfyolo-eval on PennFudan val (51 images), int8 calibrated on the train split. Vela 5.2.0 at "
            "its default system config and memory mode per NPU (U55: Ethos_U55_High_End_Embedded / Shared_Sram, "
            "500 MHz; U65: Ethos_U65_Client_Server / Dedicated_Sram_384KB, 1 GHz); its figures are estimates of its "
            "performance model, not silicon, and leave out operators it places on the CPU. TFLite Micro on one "
            f"golden input per artifact. --auto without a QAT candidate (--auto-qat-epochs {auto_qat_epochs}).",
        ]
        + (
            [
                "",
                "Ultralytics' int8 in TFLite Micro: "
                + "; ".join(
                    f"first divergence at operator {note['first_divergence']['index']} "
                    f"({note['first_divergence']['operator']}), its inputs "
                    f"{len(note['first_divergence']['inputs_read_differently'])} read differently, the file keeps "
                    f"{note['offset_buffers']} buffers by offset"
                    for note in ul_notes
                    if note.get("first_divergence")
                )
                + ".",
            ]
            if ul_notes
            else []
        )
    )
    results = {"machine": machine(), "rows": rows, "auto": auto_rows, "goals": dict(goals)}
    write_results("targets_pennfudan", results, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
