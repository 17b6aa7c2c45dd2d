"""Latency suite (issue: benchmark + bundle): what `make bench` measures with the LiteRT interpreter.

1. Per-recipe latency of the PennFudan n model at 320 (benchmark_models, 1 and 2 threads) and the int8/fp32 ratio.
2. What decides int8 vs fp32 on x86: XNNPACK on/off, per-tensor weights, uint8 I/O, SiLU vs ReLU.
3. Cross-check against LiteRT's own `litert-benchmark` (CompiledModel API) on the same files.
4. The `make convert` artifacts of the default model, when present.

Usage: python -m benchmarks.bench_latency [--runs 100]
"""

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import click

from benchmarks.common import PENNFUDAN, ROOT, WORK, machine, markdown_table, require_dataset, write_results

RECIPES = ("fp32", "fp16", "dynamic", "int8", "int8_int8io")


def litert_benchmark(path, threads, runs):
    """Median latency (ms) reported by `litert-benchmark`, or None if it is unavailable or fails."""
    executable = shutil.which("litert-benchmark") or str(
        Path(__import__("sys").executable).with_name("litert-benchmark")
    )
    if not Path(executable).is_file():
        return None
    with tempfile.TemporaryDirectory() as folder:
        result_json = Path(folder) / "result.json"
        completed = subprocess.run(
            [
                executable,
                f"--model={path}",
                f"--num_threads={threads}",
                f"--num_runs={runs}",
                "--warmup_runs=10",
                f"--result_json={result_json}",
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result_json.is_file():
            data = json.loads(result_json.read_text())
            for key in ("median_ms", "latency_median_ms", "median"):
                if key in data:
                    return float(data[key])
            found = _find_number(data, "median")
            if found is not None:
                return found
        match = re.search(r"[Mm]edian[^0-9]*([0-9.]+)\s*ms", completed.stdout + completed.stderr)
        return float(match.group(1)) if match else None


def _find_number(data, word):
    if isinstance(data, dict):
        for key, value in data.items():
            if word in key.lower() and isinstance(value, (int, float)):
                return float(value)
            found = _find_number(value, word)
            if found is not None:
                return found
    return None


def convert_variant(model, recipe_values, out_path, calibration):
    """Converts an extra study variant (per-tensor, uint8 I/O) into out_path if it is not there yet."""
    from tfyolo.data.calibration_images import load_calibration_images
    from tfyolo.metadata import embed_metadata
    from tfyolo.quantization.isolated import convert_isolated
    from tfyolo.quantization.recipe import Recipe

    if out_path.is_file():
        return out_path
    recipe = Recipe.from_dict(recipe_values)
    images, _ = load_calibration_images(calibration, 320, recipe.calibration_images, recipe.calibration_seed)
    out_path.write_bytes(embed_metadata(convert_isolated(model, recipe, images), {"recipe": recipe.to_dict()}))
    return out_path


@click.command()
@click.option("--runs", default=100, show_default=True)
@click.option("--warmup", default=10, show_default=True)
def main(runs, warmup):
    from tfyolo.benchmark import benchmark_models

    data = require_dataset(PENNFUDAN)
    ptq = WORK / "ptq_pennfudan"
    if not (ptq / "pennfudan_n_320_fp32.tflite").is_file():
        raise SystemExit(f"{ptq} has no artifacts: run `make bench-ptq` first.")
    results = {"machine": machine(), "runs": runs}
    paths = [ptq / f"pennfudan_n_320_{recipe}.tflite" for recipe in RECIPES]
    per_recipe = benchmark_models(paths, [1, 2], warmup, runs)
    int16 = benchmark_models([ptq / "pennfudan_n_320_int16x8.tflite"], [1, 2], 2, 10)
    rows = []
    for model in per_recipe["models"] + int16["models"]:
        recipe = Path(model["path"]).stem.replace("pennfudan_n_320_", "")
        rows.append(
            {
                "recipe": recipe,
                "size_mb": model["size_bytes"] / 2**20,
                "p50_t1": model["runs"][0]["latency_ms_p50"],
                "p50_t2": model["runs"][1]["latency_ms_p50"],
                "p90_t2": model["runs"][1]["latency_ms_p90"],
                "p99_t2": model["runs"][1]["latency_ms_p99"],
            }
        )
    fp32 = rows[0]
    for row in rows:
        row["ratio_t1"] = row["p50_t1"] / fp32["p50_t1"]
        row["ratio_t2"] = row["p50_t2"] / fp32["p50_t2"]
    results["per_recipe"] = rows

    # What decides int8 vs fp32 on this x86 CPU.
    model = WORK / "pennfudan_n_320" / "best.keras"
    study_dir = WORK / "latency_study"
    study_dir.mkdir(parents=True, exist_ok=True)
    per_tensor = convert_variant(
        model,
        {"name": "int8_per_tensor", "mode": "int8", "per_channel": False},
        study_dir / "int8_per_tensor.tflite",
        data,
    )
    uint8 = convert_variant(
        model, {"name": "int8_uint8io", "mode": "int8", "io_type": "uint8"}, study_dir / "int8_uint8io.tflite", data
    )
    study = []
    for label, path, xnnpack in [
        ("fp32, XNNPACK", paths[0], True),
        ("int8, XNNPACK", paths[3], True),
        ("fp32, builtin kernels", paths[0], False),
        ("int8, builtin kernels", paths[3], False),
        ("int8 per-tensor, XNNPACK", per_tensor, True),
        ("int8 uint8 I/O, XNNPACK", uint8, True),
    ]:
        measured = benchmark_models([path], [1, 2], warmup, runs, xnnpack=xnnpack)["models"][0]
        study.append(
            {
                "variant": label,
                "p50_t1": measured["runs"][0]["latency_ms_p50"],
                "p50_t2": measured["runs"][1]["latency_ms_p50"],
            }
        )
    for activation in ("relu",):
        folder = WORK / f"pennfudan_{activation}"
        if (folder / f"pennfudan_{activation}_fp32.tflite").is_file():
            for recipe in ("fp32", "int8", "qat_int8"):
                path = folder / f"pennfudan_{activation}_{recipe}.tflite"
                if path.is_file():
                    measured = benchmark_models([path], [1, 2], warmup, runs)["models"][0]
                    study.append(
                        {
                            "variant": f"{activation} {recipe}, XNNPACK",
                            "p50_t1": measured["runs"][0]["latency_ms_p50"],
                            "p50_t2": measured["runs"][1]["latency_ms_p50"],
                        }
                    )
    results["study"] = study

    cross = []
    for recipe, path in (("fp32", paths[0]), ("int8", paths[3])):
        ours = benchmark_models([path], [2], warmup, runs)["models"][0]["runs"][0]["latency_ms_p50"]
        theirs = litert_benchmark(path, 2, runs)
        cross.append(
            {
                "recipe": recipe,
                "tfyolo_p50_ms": ours,
                "litert_benchmark_median_ms": theirs,
                "difference": None if theirs is None else (ours - theirs) / theirs,
            }
        )
    results["litert_benchmark_cross_check"] = cross

    default_artifacts = sorted((ROOT / "build" / "convert").glob("*.tflite"))
    default_artifacts = [p for p in default_artifacts if "int16x8" not in p.name]
    if default_artifacts:
        measured = benchmark_models(default_artifacts, [1, 2], warmup, runs)
        results["default_model"] = [
            {
                "model": Path(m["path"]).name,
                "p50_t1": m["runs"][0]["latency_ms_p50"],
                "p50_t2": m["runs"][1]["latency_ms_p50"],
            }
            for m in measured["models"]
        ]

    markdown = [
        "# Latency: PennFudan n @ 320, LiteRT interpreter",
        "",
        f"Machine: {results['machine']}",
        "",
        f"p50 of {runs} invoke() calls after {warmup} warm-up calls; ratios against fp32 in the same run.",
        "",
        markdown_table(
            rows,
            [
                ("recipe", "recipe", None),
                ("size_mb", "size MB", "{:.2f}"),
                ("p50_t1", "p50 ms 1 thr", "{:.2f}"),
                ("p50_t2", "p50 ms 2 thr", "{:.2f}"),
                ("p99_t2", "p99 ms 2 thr", "{:.2f}"),
                ("ratio_t1", "vs fp32 1 thr", "{:.2f}"),
                ("ratio_t2", "vs fp32 2 thr", "{:.2f}"),
            ],
        ),
        "",
        "int16x8: reference kernels only (no XNNPACK), 10 runs.",
        "",
        "## What decides int8 vs fp32 here",
        "",
        markdown_table(
            study,
            [("variant", "variant", None), ("p50_t1", "p50 ms 1 thr", "{:.2f}"), ("p50_t2", "p50 ms 2 thr", "{:.2f}")],
        ),
        "",
        "## Cross-check with litert-benchmark (CompiledModel API), 2 threads",
        "",
        markdown_table(
            cross,
            [
                ("recipe", "recipe", None),
                ("tfyolo_p50_ms", "tfyolo bench p50 ms", "{:.2f}"),
                ("litert_benchmark_median_ms", "litert-benchmark median ms", "{:.2f}"),
                ("difference", "difference", "{:+.1%}"),
            ],
        ),
    ]
    if results.get("default_model"):
        markdown += [
            "",
            "## Default model (`make convert` artifacts)",
            "",
            markdown_table(
                results["default_model"],
                [("model", "model", None), ("p50_t1", "p50 ms 1 thr", "{:.2f}"), ("p50_t2", "p50 ms 2 thr", "{:.2f}")],
            ),
        ]
    write_results("latency_pennfudan", results, "\n".join(markdown))
    click.echo("\n".join(markdown))


if __name__ == "__main__":
    main()
