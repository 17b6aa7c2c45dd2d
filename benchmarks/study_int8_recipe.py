"""Concatenation inputs on the output's grid: the built-in int8 with `concat_shared_range` set, on the shared COCO
models, calibrated on coco128 and scored on coco_val150 with the calibration draws of `make bench-coco`.

ai-edge-quantizer requantizes every concatenation input that has its own scale: the value is rounded on its own
grid, then again on the output's. With `concat_shared_range: S` an input whose calibrated range lies inside the
output's and spans at least S of it takes the output's range and is rounded once
(`tfyolo.quantization.aeq.share_concatenation_ranges`). Per family and seed: the mAP50-95 drop beside the built-in
int8's drop recorded by bench-coco (benchmarks/results/coco_val150.json, the same draws and images), the QUANTIZE
ops left, and the latency of seed 0's file timed interleaved with bench-coco's int8 and int8_tflite files.

Usage: python -m benchmarks.study_concat_ranges [--share 0.6] [--families yolov8n,yolo11n,yolo26n] [--seeds 0,1,2]
Results: benchmarks/results/coco_concat_ranges.{json,md}
"""

from collections import Counter
from pathlib import Path

import click

from benchmarks.bench_coco import CALIBRATION, SCORING, family_model
from benchmarks.common import RESULTS, WORK, load_json, machine, markdown_table, write_results


def quantize_ops(path):
    from ai_edge_litert.interpreter import Interpreter

    return Counter(op["op_name"] for op in Interpreter(model_path=str(path))._get_ops_details())["QUANTIZE"]


def shared_row(family, model, seed, share):
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec
    from tfyolo.quantization.recipe import Recipe
    from tfyolo.quantization.recipes_dir import resolve_recipe

    work = WORK / "coco_concat_ranges" / family / f"share{share}_outputs_kept_seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    recipe = Recipe(**{**resolve_recipe("int8").to_dict(), "calibration_seed": seed, "concat_shared_range": share})
    (work / "int8.yaml").write_text(recipe.to_yaml())
    spec = JobSpec(
        model=str(model),
        recipes=(str(work / "int8.yaml"),),
        calibration=str(CALIBRATION),
        data=str(SCORING),
        name=family,
    )
    row = {row["recipe"]: row for row in run_job(spec, work / "job").rows}["int8"]
    if row.get("error"):
        raise SystemExit(f"{family} seed {seed}: {row['error']}")
    return {"delta": row["delta_map50_95"], "path": row["path"], "quantize_ops": quantize_ops(row["path"])}


@click.command()
@click.option("--share", default=0.6, show_default=True)
@click.option("--families", default="yolov8n,yolo11n,yolo26n", show_default=True)
@click.option("--seeds", default="0,1,2", show_default=True)
def main(share, families, seeds):
    from tfyolo.benchmark import interleaved_latency

    recorded = load_json(RESULTS / "coco_val150.json")["results"]
    seeds = [int(seed) for seed in seeds.split(",")]
    results = []
    for family in families.split(","):
        model, _ = family_model(family)
        rows = {seed: shared_row(family, model, seed, share) for seed in seeds}
        before = recorded[family]["seeds"]
        files = {"shared": Path(rows[seeds[0]]["path"]).read_bytes()}
        files.update({name: Path(before[str(seeds[0])][name]["path"]).read_bytes() for name in ("int8", "int8_tflite")})
        latency = interleaved_latency(files, num_threads=2, rounds=15)
        results.append(
            {
                "family": family,
                "share": share,
                "seeds": {
                    seed: {**row, "int8_delta": before[str(seed)]["int8"]["delta"]} for seed, row in rows.items()
                },
                "int8_quantize_ops": quantize_ops(before[str(seeds[0])]["int8"]["path"]),
                "latency_ms_p50": {name: stats["latency_ms_p50"] for name, stats in latency["models"].items()},
            }
        )
    write_results("coco_concat_ranges", {"machine": machine(), "results": results}, markdown(results, seeds))


def markdown(results, seeds):
    rows = []
    for result in results:
        shared = [result["seeds"][seed]["delta"] for seed in seeds]
        built_in = [result["seeds"][seed]["int8_delta"] for seed in seeds]
        latency = result["latency_ms_p50"]
        rows.append(
            {
                "family": result["family"],
                "int8": " / ".join(f"{value:+.2f}" for value in built_in),
                "int8_mean": sum(built_in) / len(built_in),
                "shared": " / ".join(f"{value:+.2f}" for value in shared),
                "shared_mean": sum(shared) / len(shared),
                "ops": f"{result['int8_quantize_ops']} -> {result['seeds'][seeds[0]]['quantize_ops']}",
                "latency": f"{latency['int8'] / latency['int8_tflite']:.2f}x -> "
                f"{latency['shared'] / latency['int8_tflite']:.2f}x",
            }
        )
    share = results[0]["share"]
    columns = [
        ("family", "family", None),
        ("int8", f"int8 vs float, seeds {' / '.join(map(str, seeds))} (pt)", None),
        ("int8_mean", "mean", "{:+.2f}"),
        ("shared", f"concat_shared_range {share}", None),
        ("shared_mean", "mean", "{:+.2f}"),
        ("ops", "QUANTIZE ops", None),
        ("latency", "latency / int8_tflite", None),
    ]
    return "\n".join(
        [
            f"# Concatenation inputs on the output's grid (concat_shared_range {share}), coco_val150",
            "",
            markdown_table(rows, columns),
            "",
            "Calibrated on 100 coco128 images per seed (bench-coco's draws), scored on the 150 val2017 images of "
            "coco_val150; the int8 columns are bench-coco's recorded rows (benchmarks/results/coco_val150.json). "
            "Latency: seed 0's files timed interleaved (LiteRT, XNNPACK, 2 threads). A difference under about half "
            "a point is within the noise of 150 images. Command: `python -m benchmarks.study_concat_ranges`.",
        ]
    )


if __name__ == "__main__":
    main()
