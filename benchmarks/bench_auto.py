"""Accuracy-aware quantization benchmark (issue: sensitivity + auto recipe) on the PennFudan n model at 320.

Runs `tfyolo sensitivity` and `tfyolo convert --auto` with budgets 0.3 and 1.0 points, calibrated on PennFudan
train and evaluated on PennFudan val, and reports what the search chose against plain int8 and fp32.

Usage: python -m benchmarks.bench_auto
"""

import json
import time

import click

from benchmarks.common import PENNFUDAN, WORK, machine, markdown_table, require_dataset, write_results


@click.command()
@click.option("--model", default=str(WORK / "pennfudan_n_320" / "best.keras"), show_default=True)
@click.option("--budgets", default="0.3,1.0", show_default=True)
def main(model, budgets):
    from tfyolo.console import TqdmProgress
    from tfyolo.jobs.auto_session import AutoSession
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.sensitivity import run_sensitivity
    from tfyolo.jobs.spec import JobSpec

    data = str(require_dataset(PENNFUDAN))
    results = {"machine": machine(), "model": model, "budgets": {}}
    started = time.perf_counter()
    session = AutoSession(model, data, data, "val", 64, 2, False, TqdmProgress())
    sensitivity = run_sensitivity(session, 3, WORK / "sensitivity_pennfudan")
    results["sensitivity_seconds"] = time.perf_counter() - started
    results["sensitivity_top"] = sensitivity["layers"][:10]
    ptq = json.loads((WORK / "ptq_pennfudan" / "report.json").read_text())
    reference_rows = {row["recipe"]: row for row in ptq["rows"]}
    for budget in [float(value) for value in budgets.split(",")]:
        out = WORK / f"auto_pennfudan_{budget}"
        started = time.perf_counter()
        report = run_job(
            JobSpec(model=model, auto_max_drop=budget, calibration=data, data=data), out, progress=TqdmProgress()
        )
        table = json.loads((out / "auto_candidates.json").read_text())
        results["budgets"][str(budget)] = {
            "found": bool(report.artifacts),
            "seconds": time.perf_counter() - started,
            **table,
        }
    rows = []
    for budget, entry in results["budgets"].items():
        chosen = entry["chosen"] or {}
        rows.append(
            {
                "budget": budget,
                "chosen": chosen.get("recipe"),
                "keep_float": chosen.get("keep_float"),
                "map50_95": chosen.get("map50_95"),
                "delta": chosen.get("delta_map50_95"),
                "latency": chosen.get("latency_ms_p50"),
                "candidates": len(entry["candidates"]),
                "seconds": entry["seconds"],
            }
        )
    for name in ("fp32", "int8"):
        row = reference_rows[name]
        rows.append(
            {
                "budget": "-",
                "chosen": f"plain {name} (bench-ptq)",
                "map50_95": row["map50_95"],
                "delta": row["delta_map50_95"],
                "latency": row["latency_ms_p50"],
            }
        )
    sensitivity_rows = results["sensitivity_top"]
    markdown = "\n".join(
        [
            "# Accuracy-aware quantization: PennFudan n @ 320",
            "",
            f"Machine: {results['machine']}",
            "",
            markdown_table(
                rows,
                [
                    ("budget", "max drop (pt)", None),
                    ("chosen", "chosen", None),
                    ("keep_float", "float layers", None),
                    ("map50_95", "mAP50-95", "{:.4f}"),
                    ("delta", "delta (pt)", "{:+.2f}"),
                    ("latency", "p50 ms (2 thr)", "{:.2f}"),
                    ("candidates", "candidates tried", None),
                    ("seconds", "search s", "{:.0f}"),
                ],
            ),
            "",
            f"## Most sensitive layers (QuantizationDebugger RMSE/scale), {results['sensitivity_seconds']:.0f} s",
            "",
            markdown_table(
                sensitivity_rows,
                [
                    ("layer", "layer", None),
                    ("section", "section", None),
                    ("rmse_over_scale", "RMSE/scale", "{:.3f}"),
                    ("map_gain_points", "mAP gain if float (pt)", "{:+.2f}"),
                ],
            ),
        ]
    )
    write_results("auto_pennfudan", results, markdown)
    click.echo(markdown)


if __name__ == "__main__":
    main()
