"""The built-in int8 with recipe keys changed, on the shared COCO models, calibrated on coco128 and scored on
coco_val150 with the calibration draws of `make bench-coco`: per family and seed, the mAP50-95 drop beside the
built-in int8's drop recorded by bench-coco (benchmarks/results/coco_val150.json, the same draws and images), the
QUANTIZE ops left, and the latency of seed 0's file timed interleaved with bench-coco's int8 and int8_tflite files.

Studies run with it:
- `--set concat_shared_range=0.6 --name concat_ranges`: concatenation inputs on the output's grid
  (`tfyolo.quantization.concat_requantization.share_concatenation_ranges`).
- `--set range_statistic=outputs_mean --name mean_ranges`: the plain mean of the per-image ranges inside the
  network instead of ai-edge-quantizer's moving average (`tfyolo.quantization.aeq.choose_ranges`).
- `--set 'bias_correction_layers=["stem*", "down*", "stage*"]' --name bias_correction_backbone`: the backbone's
  biases corrected layer by layer against the float model (`tfyolo.quantization.bias_correction`).
- `--set calibration_images=N --name calibration_N` (32, 64; 128 with `--seeds 0`, every coco128 image): the
  calibration size.
- `--set concat_shared_range=0.9 --name concat_ranges_tight`: the tighter share of concatenation ranges.
- `--set range_statistic=outputs_percentile --name percentile_ranges --seeds 0`: percentile ranges inside the
  network (`tfyolo.quantization.percentile_ranges`).

Usage: python -m benchmarks.study_int8_recipe --set KEY=VALUE [--set ...] --name NAME [--families ...] [--seeds 0,1,2]
Results: benchmarks/results/coco_NAME.{json,md}
"""

import json
from collections import Counter
from pathlib import Path

import click

from benchmarks.bench_coco import CALIBRATION, SCORING, family_model
from benchmarks.common import RESULTS, WORK, load_json, machine, markdown_table, write_results


def quantize_ops(path):
    from ai_edge_litert.interpreter import Interpreter

    return Counter(op["op_name"] for op in Interpreter(model_path=str(path))._get_ops_details())["QUANTIZE"]


def parse_settings(settings):
    """("key=value", ...) -> {key: value}, each value read as YAML would (0.6, null, a string)."""
    import yaml

    parsed = {}
    for setting in settings:
        key, separator, value = setting.partition("=")
        if not separator:
            raise click.BadParameter(f"expected KEY=VALUE, received {setting!r}", param_hint="--set")
        parsed[key] = yaml.safe_load(value)
    return parsed


def label(settings):
    return ", ".join(f"{key}: {json.dumps(value)}" for key, value in settings.items())


def variant_row(family, model, seed, settings, name, calibration=CALIBRATION):
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec
    from tfyolo.quantization.recipe import Recipe
    from tfyolo.quantization.recipes_dir import resolve_recipe

    work = WORK / f"coco_{name}" / family / f"seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    recipe = Recipe(**{**resolve_recipe("int8").to_dict(), "calibration_seed": seed, **settings})
    (work / "int8.yaml").write_text(recipe.to_yaml())
    spec = JobSpec(
        model=str(model),
        recipes=(str(work / "int8.yaml"),),
        calibration=str(calibration),
        data=str(SCORING),
        name=family,
    )
    row = {row["recipe"]: row for row in run_job(spec, work / "job").rows}["int8"]
    if row.get("error"):
        raise SystemExit(f"{family} seed {seed}: {row['error']}")
    return {"delta": row["delta_map50_95"], "path": row["path"], "quantize_ops": quantize_ops(row["path"])}


@click.command()
@click.option("--set", "settings", multiple=True, required=True, help="A recipe key and its value, KEY=VALUE.")
@click.option("--name", required=True, help="Results go to benchmarks/results/coco_NAME.{json,md}.")
@click.option("--families", default="yolov8n,yolo11n,yolo26n", show_default=True)
@click.option("--seeds", default="0,1,2", show_default=True)
def main(settings, name, families, seeds):
    from tfyolo.benchmark import interleaved_latency

    settings = parse_settings(settings)
    recorded = load_json(RESULTS / "coco_val150.json")["results"]
    seeds = [int(seed) for seed in seeds.split(",")]
    results = []
    for family in families.split(","):
        model, _ = family_model(family)
        rows = {seed: variant_row(family, model, seed, settings, name) for seed in seeds}
        before = recorded[family]["seeds"]
        files = {"variant": Path(rows[seeds[0]]["path"]).read_bytes()}
        files.update({name: Path(before[str(seeds[0])][name]["path"]).read_bytes() for name in ("int8", "int8_tflite")})
        latency = interleaved_latency(files, num_threads=2, rounds=15)
        results.append(
            {
                "family": family,
                "settings": settings,
                "seeds": {
                    seed: {**row, "int8_delta": before[str(seed)]["int8"]["delta"]} for seed, row in rows.items()
                },
                "int8_quantize_ops": quantize_ops(before[str(seeds[0])]["int8"]["path"]),
                "latency_ms_p50": {name: stats["latency_ms_p50"] for name, stats in latency["models"].items()},
            }
        )
    write_results(f"coco_{name}", {"machine": machine(), "results": results}, markdown(results, seeds, name))


def markdown(results, seeds, name):
    rows = []
    for result in results:
        variant = [result["seeds"][seed]["delta"] for seed in seeds]
        built_in = [result["seeds"][seed]["int8_delta"] for seed in seeds]
        latency = result["latency_ms_p50"]
        rows.append(
            {
                "family": result["family"],
                "int8": " / ".join(f"{value:+.2f}" for value in built_in),
                "int8_mean": sum(built_in) / len(built_in),
                "variant": " / ".join(f"{value:+.2f}" for value in variant),
                "variant_mean": sum(variant) / len(variant),
                "ops": f"{result['int8_quantize_ops']} -> {result['seeds'][seeds[0]]['quantize_ops']}",
                "latency": f"{latency['int8'] / latency['int8_tflite']:.2f}x -> "
                f"{latency['variant'] / latency['int8_tflite']:.2f}x",
            }
        )
    settings = label(results[0]["settings"])
    columns = [
        ("family", "family", None),
        ("int8", f"int8 vs float, seeds {' / '.join(map(str, seeds))} (pt)", None),
        ("int8_mean", "mean", "{:+.2f}"),
        ("variant", settings, None),
        ("variant_mean", "mean", "{:+.2f}"),
        ("ops", "QUANTIZE ops", None),
        ("latency", "latency / int8_tflite", None),
    ]
    return "\n".join(
        [
            f"# The built-in int8 with {settings}, coco_val150",
            "",
            markdown_table(rows, columns),
            "",
            f"The built-in int8 with {settings} against the built-in int8 as bench-coco made it (100 coco128 "
            "images per seed, bench-coco's draws), both scored on the 150 val2017 images of coco_val150; the int8 "
            "columns are bench-coco's recorded rows (benchmarks/results/coco_val150.json). "
            "Latency: seed 0's files timed interleaved (LiteRT, XNNPACK, 2 threads). A difference under about half "
            "a point is within the noise of 150 images. Command: `python -m benchmarks.study_int8_recipe "
            + " ".join(f"--set {key}={json.dumps(value)}" for key, value in results[0]["settings"].items())
            + f" --name {name} --seeds {','.join(map(str, seeds))}`.",
        ]
    )


if __name__ == "__main__":
    main()
