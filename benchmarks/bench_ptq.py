"""PTQ benchmark (issue: post-training quantization): every recipe on the PennFudan n model at 320.

Calibrated on PennFudan *train*, evaluated on PennFudan *val* against the float Keras model (pycocotools).
Also checks the evaluator's own claim: the float .keras and its fp32 TFLite give the same mAP to 3 decimals.

Usage: python -m benchmarks.bench_ptq [--model benchmarks/work/pennfudan_n_320/best.keras]
"""

import time

import click

from benchmarks.common import PENNFUDAN, WORK, machine, markdown_table, require_dataset, write_results

GOALS = {"int8": 1.0, "int8_int8io": 1.0, "int16x8": 0.3, "fp16": 0.1}  # max mAP50-95 drop, points
MAX_INT8_SIZE_RATIO = 0.27


@click.command()
@click.option("--model", default=str(WORK / "pennfudan_n_320" / "best.keras"), show_default=True)
@click.option("--recipe", "recipes", multiple=True, help="Subset of recipes [default: all].")
@click.option("--name", default="ptq_pennfudan", show_default=True)
def main(model, recipes, name):
    from tfyolo.console import TqdmProgress
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec

    data = require_dataset(PENNFUDAN)
    started = time.perf_counter()
    spec = JobSpec(model=model, recipes=recipes, calibration=str(data), data=str(data), name="pennfudan_n_320")
    report = run_job(spec, WORK / name, progress=TqdmProgress())
    rows = {row["recipe"]: row for row in report.rows}
    checks = []
    for recipe, max_drop in GOALS.items():
        row = rows.get(recipe)
        if row and row["delta_map50_95"] is not None:
            checks.append(
                {
                    "check": f"{recipe} mAP50-95 drop <= {max_drop} pt",
                    "value": -row["delta_map50_95"],
                    "pass": -row["delta_map50_95"] <= max_drop,
                }
            )
    if rows.get("int8", {}).get("size_ratio_vs_fp32"):
        ratio = rows["int8"]["size_ratio_vs_fp32"]
        checks.append(
            {
                "check": f"int8 size <= {MAX_INT8_SIZE_RATIO} x fp32",
                "value": ratio,
                "pass": ratio <= MAX_INT8_SIZE_RATIO,
            }
        )
    if "fp32" in rows and rows["fp32"]["map50_95"] is not None:
        same = round(rows["fp32"]["map50_95"], 3) == round(rows["float"]["map50_95"], 3)
        checks.append(
            {
                "check": "fp32 TFLite mAP50-95 == Keras to 3 decimals",
                "value": rows["fp32"]["map50_95"] - rows["float"]["map50_95"],
                "pass": same,
            }
        )
    results = {
        "machine": machine(),
        "model": model,
        "report": report,
        "checks": checks,
        "wall_seconds": time.perf_counter() - started,
    }
    table = markdown_table(
        report.rows,
        [
            ("recipe", "recipe", None),
            ("size_bytes", "size (bytes)", "{:,}"),
            ("map50_95", "mAP50-95", "{:.4f}"),
            ("map50", "mAP50", "{:.4f}"),
            ("delta_map50_95", "delta (pt)", "{:+.2f}"),
            ("full_integer", "full int", None),
            ("latency_ms_p50", "p50 ms (2 thr)", "{:.2f}"),
            ("error", "error", None),
        ],
    )
    check_table = markdown_table(
        checks, [("check", "goal", None), ("value", "measured", "{:.4f}"), ("pass", "met", None)]
    )
    markdown = "\n".join(
        [
            "# PTQ benchmark: PennFudan n @ 320 (calibrated on train, evaluated on val)",
            "",
            f"Machine: {results['machine']}",
            "",
            table,
            "",
            check_table,
            "",
            "int16x8 runs on TFLite reference kernels (no XNNPACK): its latency is not representative of accelerators.",
        ]
    )
    write_results(name, results, markdown)
    click.echo(markdown)


if __name__ == "__main__":
    main()
