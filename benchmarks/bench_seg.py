"""Instance segmentation int8, head to head on the same weights: Ultralytics' PennFudan YOLOv8n-seg, YOLO11n-seg and
YOLO26n-seg (its one-to-one head with top-k, and its one-to-many head with NMS) converted by `tfyolo convert` (the
`.pt` imported on the fly) against Ultralytics' own int8 LiteRT export of each.

Every row is scored by tfyolo-eval's path (box and mask mAP50-95, pycocotools, masks at the original image size) on
pennfudan_seg val (51 images, 115 instances) in one lockstep pass against the imported float model, and the int8
files are timed in one interleaved run. tfyolo's int8 is calibrated on the train split (100 of its 119 images) with
seeds 0 / 1 / 2: 51 images are few, so each drop is given as its spread over the seeds.

YOLO26n-seg's one-to-one head, whose plain int8 loses its masks, is also converted from a QAT model distilled from
the float model on the same calibration images (`tfyolo qat --distill`, `DISTILL_EPOCHS` epochs, the best of them on
a held-out fifth kept): rows qat_int8 and qat_int8_int8io.

Usage: python -m benchmarks.bench_seg [--model yolo11n-seg ...] [--seed 0 --seed 1 ...]
Results: benchmarks/results/seg_pennfudan.{json,md}
"""

import shutil
import time
from pathlib import Path

import click

from benchmarks.bench_coco import spread
from benchmarks.common import (
    RESULTS,
    ROOT,
    WORK,
    load_json,
    machine,
    markdown_table,
    pennfudan_seg_data,
    seeded_recipes,
    write_results,
)

WEIGHTS = ROOT.parent / "shared" / "weights"
# row name -> (the shared folder of the Ultralytics model, the YOLO26 head to import, the goals that apply; "qat": the
# distilled QAT rows are made and held to the goals too)
MODELS = {
    "yolov8n-seg": ("ultralytics_yolov8n_pennfudan_seg", None, ("drop", "above")),
    "yolo11n-seg": ("ultralytics_yolo11n_pennfudan_seg", None, ("drop", "above", "latency")),
    "yolo26n-seg one2one": ("ultralytics_yolo26n_pennfudan_seg", "one2one", ("drop", "qat")),
    "yolo26n-seg one2many": ("ultralytics_yolo26n_pennfudan_seg", "one2many", ("above",)),
}
RECIPES = ("int8", "int8_int8io")
QAT_ROWS = ("qat_int8", "qat_int8_int8io")
# Epochs of distillation: on YOLO26n-seg one-to-one the held-out loss still fell at epochs 5-7 of 8 (seeds 0 and 1).
DISTILL_EPOCHS = 8
GOAL_DROP = 0.5
GOAL_ABOVE_ULTRALYTICS = 2.0
GOAL_LATENCY = 0.9
# The Ethos-U the integer-only file is compiled for: every operator must land on the NPU.
NPU = "ethos-u55-128"
RESULT = "seg_pennfudan"


def convert(checkpoint, head, data, work, seed):
    """One `tfyolo convert` job, no evaluation (every row is scored below in one pass): {recipe: artifact path},
    and the imported float model's path."""
    from tfyolo.console import TqdmProgress
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec

    spec = JobSpec(
        model=str(checkpoint),
        head=head,
        recipes=seeded_recipes(work / f"recipes_seed{seed}", seed, RECIPES),
        calibration=str(data),
        data=str(data),
        evaluate=False,
        name=f"seed{seed}",
    )
    started = time.perf_counter()
    report = run_job(spec, work, progress=TqdmProgress())
    failed = {row["recipe"]: row["error"] for row in report.rows if row.get("error")}
    if failed:
        raise SystemExit(f"{checkpoint} seed {seed}: conversions failed: {failed}")
    paths = {row["recipe"]: row["path"] for row in report.rows}
    imported = next(Path(work, "imported").glob("*.keras"))
    return paths, imported, time.perf_counter() - started


def distilled(imported, data, work, seed):
    """The QAT model distilled from the imported float model by `tfyolo qat --distill`'s job on seed `seed`'s draw of
    train images (the int8's calibration draw), converted by the job that converts any QAT model: {row: artifact
    path}, the distillation's history and seconds."""
    from tfyolo.console import TqdmProgress
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec
    from tfyolo.qat.distillation import DistillationConfig, distill_on_data
    from tfyolo.quantization.recipes_dir import resolve_recipe

    started = time.perf_counter()
    folder = work / f"qat_seed{seed}"
    config = DistillationConfig(epochs=DISTILL_EPOCHS, seed=seed)
    history, _ = distill_on_data(
        imported, data, folder, config, resolve_recipe("int8").calibration_images, progress=print
    )
    qat_model = folder / "best.h5"
    spec = JobSpec(
        model=str(imported),
        qat_model=str(qat_model),
        recipes=("fp32",),  # the job converts a QAT model beside its float model's recipes; fp32 is the cheapest
        calibration=str(data),
        data=str(data),
        evaluate=False,
        name=f"qat_seed{seed}",
    )
    report = run_job(spec, folder / "convert", progress=TqdmProgress())
    paths = {row["recipe"]: row["path"] for row in report.rows if row["recipe"] in QAT_ROWS}
    if len(paths) != len(QAT_ROWS) or not all(paths.values()):
        raise SystemExit(f"{imported} seed {seed}: the QAT conversions failed: {report.rows}")
    return paths, history, time.perf_counter() - started


def model_results(name, data, seeds):
    from tfyolo.benchmark import interleaved_latency
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.evaluation.model_evaluation import evaluate_models
    from tfyolo.evaluation.runners import TFLiteRunner
    from tfyolo.jobs.model_runner import open_runner
    from tfyolo.qat.distillation import kept_epoch
    from tfyolo.targets.npu_target import NpuTarget, compile_for_npu

    folder, head, goals = MODELS[name]
    weights = WEIGHTS / folder
    if not (weights / "best.pt").is_file():
        raise SystemExit(f"{weights} not found: this benchmark needs ../shared/weights beside the project.")
    work = WORK / "seg" / name.replace(" ", "_")
    shutil.rmtree(work, ignore_errors=True)
    converted, seconds, distillation = {}, {}, {}
    for seed in seeds:
        converted[seed], imported, seconds[seed] = convert(weights / "best.pt", head, data, work, seed)
        if "qat" in goals:
            paths, history, spent = distilled(imported, data, work, seed)
            converted[seed].update(paths)
            best = kept_epoch(history)
            distillation[seed] = {"seconds": spent, "best_epoch": best["epoch"], "history": history}
    recipes = RECIPES + (QAT_ROWS if "qat" in goals else ())
    ultralytics = next(weights.glob("*_int8.tflite"))
    runners = {
        f"{recipe} seed{seed}": TFLiteRunner(paths[recipe]) for seed, paths in converted.items() for recipe in recipes
    }
    runners["ultralytics int8"] = TFLiteRunner(ultralytics)
    dataset = DetectionDataset.from_data_yaml(data, "val")
    reports, _, _ = evaluate_models(runners, dataset, "val", open_runner(imported))
    reference = next(iter(reports.values()))["reference"]
    scored = {
        row: {
            "box": report["map50_95"],
            "mask": report["mask"]["map50_95"],
            "delta_box": report["delta_map50_95"],
            "delta_mask": report["delta_mask_map50_95"],
        }
        for row, report in reports.items()
    }
    timed = {recipe: Path(converted[seeds[0]][recipe]).read_bytes() for recipe in recipes}
    timed["ultralytics int8"] = ultralytics.read_bytes()
    latency = interleaved_latency(timed, num_threads=2, rounds=20)
    npu = {
        recipe: compile_for_npu(timed[recipe], NpuTarget(NPU), recipe)[1]
        for recipe in recipes
        if recipe.endswith("_int8io")
    }
    return {
        "model": name,
        "checkpoint": str(weights / "best.pt"),
        "head": head,
        "goals": goals,
        "float": {"box": reference["map50_95"], "mask": reference["mask"]["map50_95"]},
        "rows": scored,
        "convert_seconds": seconds,
        "latency_ms_p50": {row: stats["latency_ms_p50"] for row, stats in latency["models"].items()},
        "load_average": latency["load_average"],
        "npu": {
            recipe: {
                "accelerator": NPU,
                "share": found.npu_share,
                "cpu_operators": found.cpu_operators,
                "ms": found.inference_ms,
            }
            for recipe, found in npu.items()
        },
        "recipes": list(recipes),
        "distillation": distillation,
        "seeds": list(seeds),
    }


def _spread_text(values):
    low, high, mean = spread(values)
    return f"{mean:+.2f} ({low:+.2f} .. {high:+.2f})"


def _summary_rows(result):
    """Per recipe: mAP (seed 0), the drop's mean and spread over seeds, box and mask; then Ultralytics' int8."""
    rows, seeds = [], result["seeds"]
    latency = result["latency_ms_p50"]
    for recipe in _recipes(result):
        per_seed = [result["rows"][f"{recipe} seed{seed}"] for seed in seeds]
        rows.append(
            {
                "row": f"tfyolo {recipe}",
                "box": per_seed[0]["box"],
                "mask": per_seed[0]["mask"],
                "delta_box": _spread_text([row["delta_box"] for row in per_seed]),
                "delta_mask": _spread_text([row["delta_mask"] for row in per_seed]),
                "latency": latency.get(recipe),
            }
        )
    ultralytics = result["rows"]["ultralytics int8"]
    rows.append(
        {
            "row": "Ultralytics int8",
            "box": ultralytics["box"],
            "mask": ultralytics["mask"],
            "delta_box": f"{ultralytics['delta_box']:+.2f}",
            "delta_mask": f"{ultralytics['delta_mask']:+.2f}",
            "latency": latency.get("ultralytics int8"),
        }
    )
    return rows


def _goal_rows(result):
    """Each goal that applies to the model, measured on the integer-only int8 I/O file (int8_int8io: what an NPU
    or a microcontroller runs) and on the float-I/O int8 (what a CPU application calls)."""
    seeds, rows, ultralytics = result["seeds"], [], result["rows"]["ultralytics int8"]
    for recipe in _recipes(result):
        per_seed = [result["rows"][f"{recipe} seed{seed}"] for seed in seeds]
        if "drop" in result["goals"]:
            worst = max(-min(row["delta_box"], row["delta_mask"]) for row in per_seed)
            mean_box = sum(row["delta_box"] for row in per_seed) / len(per_seed)
            mean_mask = sum(row["delta_mask"] for row in per_seed) / len(per_seed)
            rows.append(
                {
                    "goal": f"{recipe}: box and mask drop <= {GOAL_DROP} pt",
                    "measured": f"mean box {mean_box:+.2f}, mask {mean_mask:+.2f}; worst seed {-worst:+.2f}",
                    "met": max(-mean_box, -mean_mask) <= GOAL_DROP,
                }
            )
        if "above" in result["goals"]:
            box = [100 * (row["box"] - ultralytics["box"]) for row in per_seed]
            mask = [100 * (row["mask"] - ultralytics["mask"]) for row in per_seed]
            rows.append(
                {
                    "goal": f"{recipe}: >= {GOAL_ABOVE_ULTRALYTICS} pt above Ultralytics int8, box and mask",
                    "measured": f"box {_spread_text(box)}, mask {_spread_text(mask)}",
                    "met": min(sum(box), sum(mask)) / len(per_seed) >= GOAL_ABOVE_ULTRALYTICS,
                }
            )
        if "latency" in result["goals"]:
            ratio = result["latency_ms_p50"][recipe] / result["latency_ms_p50"]["ultralytics int8"]
            rows.append(
                {
                    "goal": f"{recipe}: latency <= {GOAL_LATENCY}x Ultralytics int8",
                    "measured": f"{ratio:.2f}x",
                    "met": ratio <= GOAL_LATENCY,
                }
            )
    # Results of an earlier version hold one compiled file, the int8_int8io.
    compiled = result["npu"] if "accelerator" not in result["npu"] else {"int8_int8io": result["npu"]}
    for recipe, npu in compiled.items():
        rows.append(
            {
                "goal": f"{recipe}: every operator on the NPU ({npu['accelerator']}, Vela)",
                "measured": f"{100 * npu['share']:.1f}% of operators on the NPU"
                + (f", CPU: {npu['cpu_operators']}" if npu["cpu_operators"] else "")
                + f"; Vela's estimate {npu['ms']:.1f} ms",
                "met": not npu["cpu_operators"],
            }
        )
    return rows


def _recipes(result):
    """tfyolo's rows of a result (results of an earlier version name none: the built-in int8 pair)."""
    return tuple(result.get("recipes", RECIPES))


def markdown(results):
    lines = [
        "# Instance segmentation int8 on the same weights: tfyolo vs Ultralytics (pennfudan_seg val, 320 px)",
        "",
        "Every row scored by tfyolo-eval's path (box / mask mAP50-95, pycocotools, masks at the original image size) "
        "against the imported float model; drops in points as the mean (min .. max) over calibration seeds "
        f"{', '.join(map(str, next(iter(results.values()))['seeds']))}, mAP of seed 0; latency p50 (LiteRT, "
        "XNNPACK, 2 threads) of seed 0's files and Ultralytics' int8 timed in one interleaved run.",
    ]
    summary_columns = [
        ("row", "artifact", None),
        ("box", "box mAP50-95", "{:.4f}"),
        ("mask", "mask mAP50-95", "{:.4f}"),
        ("delta_box", "box drop (pt)", None),
        ("delta_mask", "mask drop (pt)", None),
        ("latency", "p50 ms", "{:.2f}"),
    ]
    for name, result in results.items():
        floats = result["float"]
        lines += [
            "",
            f"## {name}: float (imported `best.pt`) box {floats['box']:.4f}, mask {floats['mask']:.4f}",
            "",
            markdown_table(_summary_rows(result), summary_columns),
            "",
            markdown_table(
                [dict(row, met="yes" if row["met"] else "**no**") for row in _goal_rows(result)],
                [("goal", "goal", None), ("measured", "measured", None), ("met", "met", None)],
            ),
            "",
            f"Load average {result['load_average'][0]:.2f} -> {result['load_average'][1]:.2f}; conversion "
            + ", ".join(f"seed {seed} {seconds:.0f} s" for seed, seconds in result["convert_seconds"].items())
            + " (import, calibration, both recipes)"
            + "".join(
                f"; distillation seed {seed} {facts['seconds']:.0f} s (best epoch {facts['best_epoch']} of "
                f"{len(facts['history']) - 1}, with its conversion)"
                for seed, facts in result.get("distillation", {}).items()
            )
            + ".",
        ]
    return "\n".join(lines)


def render():
    """benchmarks/results/seg_pennfudan.md again from its JSON (after a change to the tables, not to the figures)."""
    stored = load_json(RESULTS / f"{RESULT}.json")
    write_results(RESULT, stored, markdown(stored["results"]))


@click.command()
@click.option("--model", "models", multiple=True, type=click.Choice(sorted(MODELS)), help="[default: all]")
@click.option("--seed", "seeds", multiple=True, type=int, help="[default: 0, 1, 2]")
def main(models, seeds):
    data = pennfudan_seg_data()
    # A run of some models keeps the other models' results of an earlier run.
    previous = RESULTS / f"{RESULT}.json"
    results = load_json(previous)["results"] if previous.is_file() else {}
    for name in models or MODELS:
        results[name] = model_results(name, data, tuple(seeds) or (0, 1, 2))
        ordered = {key: results[key] for key in MODELS if key in results}
        write_results(RESULT, {"machine": machine(), "results": ordered}, markdown(ordered))
    print(markdown({key: results[key] for key in MODELS if key in results}))


if __name__ == "__main__":
    main()
