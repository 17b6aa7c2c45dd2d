"""80-class int8 on images the model has never seen: the shared COCO YOLOv8n, YOLO11n and YOLO26n (one-to-one head,
top-k), calibrated on coco128 (COCO train2017, which every COCO model has seen) and scored on coco_val150 (150 COCO
val2017 images, which none has).

Per family and calibration seed (a seed draws the 100 calibration images out of coco128's 128), one convert job:
- float: the Keras model;
- `int8`: the built-in recipe, what `tfyolo convert --recipe int8` and `make convert` make (ai-edge-quantizer with
  tfyolo's ranges, float32 I/O);
- `int8_tflite`: TFLiteConverter's int8, what `tf.lite.TFLiteConverter` with a representative dataset makes.
Once per family: Ultralytics' own int8 of the same weights where it is shared, scored on the same images, and
`--auto --max-drop 0.2` (seed 0's calibration images): what it chose and how long the search took. Latency: each
family's int8, int8_tflite and Ultralytics' int8 timed in one interleaved run.

Usage: python -m benchmarks.bench_coco [--family yolov8n] [--seeds 0,1,2] [--no-auto]
Results: benchmarks/results/coco_val150.{json,md}
"""

import time
from pathlib import Path

import click

from benchmarks.common import (
    RESULTS,
    ROOT,
    SHARED,
    WORK,
    load_json,
    machine,
    markdown_table,
    require_dataset,
    seeded_recipes,
    write_results,
)

WEIGHTS = ROOT.parent / "shared" / "weights"
CALIBRATION = SHARED / "coco128" / "data.yaml"
SCORING = SHARED / "coco_val150" / "data.yaml"
FAMILIES = {
    "yolov8n": (WEIGHTS / "ultralytics_yolov8n_coco_dequantized", "yolov8n_coco.keras", "yolov8n_full_integer_quant"),
    "yolo11n": (WEIGHTS / "ultralytics_yolo11n_coco_dequantized", "yolo11n_coco.keras", "yolo11n_integer_quant"),
    # Ultralytics' full-integer end-to-end YOLO26 export shares one int8 scale between boxes, scores and classes:
    # tfyolo-eval refuses it, and its dynamic-range export is not an int8 model.
    "yolo26n": (WEIGHTS / "ultralytics_yolo26n_coco_dequantized", "yolo26n_coco.keras", None),
}
RECIPES = ("int8", "int8_tflite")
AUTO_MAX_DROP = 0.2
GOAL_INT8 = 0.3
GOAL_LATENCY = 1.05
GOAL_ABOVE_ULTRALYTICS = 2.0
# Rounds of the interleaved latency run. On this shared 2-core machine the same YOLO26n int8 / int8_tflite pair timed
# 0.93x, 1.00x and 1.18x in three runs of 15 rounds, and 1.037x to 1.041x in three runs of 100 (about a minute).
LATENCY_ROUNDS = 100


def convert_rows(family, model, work, seed):
    """One convert job: float, int8, int8_tflite against coco_val150, calibrated on coco128 with `seed`."""
    from tfyolo.console import TqdmProgress
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec

    spec = JobSpec(
        model=str(model),
        recipes=seeded_recipes(work / f"seed{seed}", seed, RECIPES),
        calibration=str(CALIBRATION),
        data=str(SCORING),
        name=family,
    )
    report = run_job(spec, work / f"seed{seed}", progress=TqdmProgress())
    failed = {row["recipe"]: row["error"] for row in report.rows if row.get("error")}
    if failed:
        raise SystemExit(f"{family} seed {seed}: conversions failed: {failed}")
    return {row["recipe"]: row for row in report.rows}


def ultralytics_row(path):
    """Ultralytics' own int8 scored on coco_val150 by tfyolo-eval's path."""
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.evaluation.model_evaluation import evaluate_model
    from tfyolo.evaluation.runners import TFLiteRunner

    dataset = DetectionDataset.from_data_yaml(SCORING, "val")
    report, _, _ = evaluate_model(TFLiteRunner(path), dataset, "val")
    return {"map50_95": report["map50_95"], "map50": report["map50"], "path": str(path)}


def auto_row(model, work):
    """`tfyolo convert --auto --max-drop 0.2` as a job (seed 0's calibration draw); its chosen row and time."""
    from tfyolo.console import TqdmProgress
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec

    spec = JobSpec(model=str(model), auto_max_drop=AUTO_MAX_DROP, calibration=str(CALIBRATION), data=str(SCORING))
    started = time.perf_counter()
    report = run_job(spec, work / "auto", progress=TqdmProgress())
    seconds = time.perf_counter() - started
    candidates = [(c["recipe"], c["delta_map50_95"], c["error"]) for c in report.auto["candidates"]]
    chosen = report.auto["chosen"] or report.auto["closest"] or {}
    return {
        "chosen": report.auto["chosen"]["recipe"] if report.auto["chosen"] else None,
        "closest": chosen.get("recipe"),
        "delta_map50_95": chosen.get("delta_map50_95"),
        "seconds": seconds,
        "candidates": candidates,
    }


def family_model(family):
    folder, keras_name, _ = FAMILIES[family]
    model = folder / keras_name
    if not model.is_file():
        raise SystemExit(f"{model} not found: this benchmark needs ../shared/weights beside the project.")
    return model, WORK / "coco_val150" / family


def family_results(family, seeds, with_auto):
    from tfyolo.benchmark import interleaved_latency

    folder, _, ultralytics_name = FAMILIES[family]
    model, work = family_model(family)
    per_seed = {seed: convert_rows(family, model, work, seed) for seed in seeds}
    result = {"family": family, "model": str(model), "seeds": {}}
    for seed, rows in per_seed.items():
        float_map = rows["float"]["map50_95"]
        result["float_map50_95"] = float_map
        result["seeds"][seed] = {
            name: {
                "map50_95": rows[name]["map50_95"],
                "delta": rows[name]["delta_map50_95"],
                "path": rows[name]["path"],
            }
            for name in RECIPES
        }
    contents = {name: Path(result["seeds"][seeds[0]][name]["path"]).read_bytes() for name in RECIPES}
    if ultralytics_name:
        path = folder / "ultralytics_exports" / f"{ultralytics_name}.tflite"
        row = ultralytics_row(path)
        row["delta"] = 100 * (row["map50_95"] - result["float_map50_95"])
        result["ultralytics"] = dict(row, name=ultralytics_name)
        contents["ultralytics"] = path.read_bytes()
    latency = interleaved_latency(contents, num_threads=2, rounds=LATENCY_ROUNDS)
    result["latency_ms_p50"] = {name: stats["latency_ms_p50"] for name, stats in latency["models"].items()}
    result["load_average"] = latency["load_average"]
    if with_auto:
        result["auto"] = auto_row(model, work)
    return result


def spread(values):
    return min(values), max(values), sum(values) / len(values)


def markdown(results):
    rows, goals = [], []
    for family, result in results.items():
        latency = result["latency_ms_p50"]
        for name in RECIPES:
            deltas = [result["seeds"][seed][name]["delta"] for seed in result["seeds"]]
            low, high, mean = spread(deltas)
            rows.append(
                {
                    "family": family,
                    "artifact": f"`{name}`",
                    "float": result["float_map50_95"],
                    "per_seed": " / ".join(f"{delta:+.2f}" for delta in deltas),
                    "mean": mean,
                    "worst": low,
                    "ms": latency[name],
                    "vs_tflite": latency[name] / latency["int8_tflite"],
                }
            )
        worst_int8 = min(result["seeds"][seed]["int8"]["delta"] for seed in result["seeds"])
        ratio = latency["int8"] / latency["int8_tflite"]
        goals.append((f"{family}: `--recipe int8` drop <= {GOAL_INT8} pt (worst seed)", f"{worst_int8:+.2f} pt"))
        goals.append((f"{family}: int8 latency <= {GOAL_LATENCY}x TFLiteConverter's", f"{ratio:.2f}x"))
        if "ultralytics" in result:
            ultra = result["ultralytics"]
            rows.append(
                {
                    "family": family,
                    "artifact": f"Ultralytics' `{ultra['name']}`",
                    "float": result["float_map50_95"],
                    "per_seed": f"{ultra['delta']:+.2f}",
                    "mean": ultra["delta"],
                    "worst": ultra["delta"],
                    "ms": latency["ultralytics"],
                    "vs_tflite": latency["ultralytics"] / latency["int8_tflite"],
                }
            )
            above = worst_int8 - ultra["delta"]
            goals.append(
                (f"{family}: int8 >= {GOAL_ABOVE_ULTRALYTICS} pt above Ultralytics' int8 (worst seed)", f"{above:+.2f}")
            )
        if "auto" in result:
            auto = result["auto"]
            label = auto["chosen"] or f"nothing (closest {auto['closest']})"
            delta = "-" if auto["delta_map50_95"] is None else f"{auto['delta_map50_95']:+.2f} pt"
            rows.append(
                {
                    "family": family,
                    "artifact": f"`--auto --max-drop {AUTO_MAX_DROP}`: {label}, {auto['seconds'] / 60:.1f} min",
                    "float": result["float_map50_95"],
                    "per_seed": delta,
                }
            )
            goals.append((f"{family}: --auto --max-drop {AUTO_MAX_DROP} within budget", f"{label}, {delta}"))
    columns = [
        ("family", "family", None),
        ("artifact", "artifact", None),
        ("float", "float mAP50-95", "{:.4f}"),
        ("per_seed", "vs float, seeds 0 / 1 / 2 (pt)", None),
        ("mean", "mean (pt)", "{:+.2f}"),
        ("worst", "worst (pt)", "{:+.2f}"),
        ("ms", "p50 ms (2 thr)", "{:.1f}"),
        ("vs_tflite", "latency / int8_tflite", "{:.2f}"),
    ]
    return "\n".join(
        [
            "# 80 classes on unseen images: calibrated on coco128 (train2017), scored on coco_val150 (val2017)",
            "",
            markdown_table(rows, columns),
            "",
            markdown_table(
                [{"goal": goal, "measured": value} for goal, value in goals],
                [("goal", "goal", None), ("measured", "measured", None)],
            ),
            "",
            "Each seed draws 100 of coco128's 128 images to calibrate on; every row is scored by tfyolo's evaluator "
            "on the same 150 val2017 images at 640 px (YOLO26n: its one-to-one head, top-k). 150 images and 80 "
            "classes are noisy: a difference under about half a point is within the sample's noise. Latency: each "
            "family's artifacts timed in one interleaved run (LiteRT, XNNPACK, 2 threads). Command: "
            "`python -m benchmarks.bench_coco`.",
        ]
    )


def record(family, update):
    """Merges `update` into `family`'s entry of the results file and rewrites its JSON and Markdown: a run of some
    families (or of the search alone) keeps the rest from the last run, and each family is written as it ends."""
    previous = RESULTS / "coco_val150.json"
    results = load_json(previous)["results"] if previous.is_file() else {}
    results[family] = update(results.get(family))
    results = {name: results[name] for name in FAMILIES if name in results}
    text = markdown(results)
    write_results("coco_val150", {"machine": machine(), "results": results}, text)
    return text


def _keeping_last_auto(result, last, no_auto):
    """`result`, with the family's last recorded search when this run left the search out."""
    if no_auto and last and last.get("auto"):
        return dict(result, auto=last["auto"])
    return result


@click.command()
@click.option("--family", "families", multiple=True, type=click.Choice(sorted(FAMILIES)), help="[default: all]")
@click.option("--seeds", default="0,1,2", show_default=True, help="Calibration seeds, comma-separated.")
@click.option("--no-auto", is_flag=True, help="Leave out the --auto search (its last recorded row is kept).")
@click.option("--auto-only", is_flag=True, help="Run only the --auto search, into the family's last results.")
def main(families, seeds, no_auto, auto_only):
    require_dataset(CALIBRATION)
    require_dataset(SCORING)
    seeds = tuple(int(seed) for seed in seeds.split(","))
    text = ""
    for family in families or FAMILIES:
        if auto_only:
            auto = auto_row(family_model(family)[0], family_model(family)[1])
            text = record(family, lambda result, auto=auto: dict(result, auto=auto))
        else:
            result = family_results(family, seeds, not no_auto)
            text = record(family, lambda last, result=result: _keeping_last_auto(result, last, no_auto))
    print(text)


if __name__ == "__main__":
    main()
