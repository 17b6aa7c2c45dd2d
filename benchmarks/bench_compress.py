"""Non-uniform and adaptive quantization (issue 14), the part built so far: mixed int8 / int16 activations on the
default synthetic model, where plain int8 loses the most.

Candidates, converted, evaluated against the float model and timed interleaved in one `run_job`:
int8 (TFLiteConverter), int8_aeq (ai-edge-quantizer, all int8), int8_int16act{1,2,4} (ai-edge-quantizer with the
1/2/4 blocks the sensitivity ranking puts worst at 16-bit activations), int16x8 (every activation 16-bit), fp32.
Sizes are reported raw and gzip-compressed.

Usage: python -m benchmarks.bench_compress [--model build/default/best.keras]
"""

import gzip
import shutil
from pathlib import Path

import click

from benchmarks.common import ROOT, WORK, machine, markdown_table, write_results

DEFAULT_MODEL = ROOT / "build" / "default" / "best.keras"
STEPS = (1, 2, 4)


@click.command()
@click.option("--model", default=str(DEFAULT_MODEL), show_default=True)
@click.option("--calibration", default=str(ROOT / "calibration_data"), show_default=True)
def main(model, calibration):
    from tfyolo.console import TqdmProgress
    from tfyolo.jobs.auto_session import AutoSession
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec
    from tfyolo.quantization.aeq import block_pattern
    from tfyolo.quantization.recipe import Recipe
    from tfyolo.quantization.sensitivity import layer_sensitivity

    if not Path(model).is_file():
        raise SystemExit(f"{model} not found: `make train` builds the default model.")
    out = WORK / "compress_default"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    session = AutoSession(model, calibration, None, "val", 100, 2, False, TqdmProgress())
    ranking = layer_sensitivity(session.model, session.images[:32], session.images[:8])
    worst = [entry["layer"] for entry in ranking[: max(STEPS)]]
    recipe_paths = []
    for count in STEPS:
        recipe = Recipe(
            name=f"int8_int16act{count}",
            mode="int8",
            quantizer="ai_edge_quantizer",
            int16_layers=tuple(block_pattern(layer) for layer in worst[:count]),
            description=f"int8, 16-bit activations in the {count} worst block(s)",
        )
        path = out / f"{recipe.name}.yaml"
        path.write_text(recipe.to_yaml())
        recipe_paths.append(str(path))
    aeq = out / "int8_aeq.yaml"
    aeq.write_text(Recipe(name="int8_aeq", mode="int8", quantizer="ai_edge_quantizer").to_yaml())
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
                "gzip": len(gzip.compress(content, 9)),
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
        {"machine": machine(), "rows": rows, "worst_layers": worst, "report": report.to_dict()},
        markdown,
    )
    print(markdown)


if __name__ == "__main__":
    main()
