"""80-class int8 (issue: int8 that holds on 80 classes): the shared COCO-trained YOLOv8n through tfyolo's int8
recipes and Ultralytics' own full-integer export of the same weights.

`../shared/datasets/coco128` is split in two halves by file name; each recipe is calibrated on one half and scored on
the other, then the other way round, so no model is calibrated on the images it is scored on. These are COCO
train2017 images: the float model has seen them in training, so absolute mAP here reads high; the drops against
float are what this measures. Every artifact is scored by tfyolo's evaluator at 640 px and the artifacts of the
first direction are timed in one interleaved run.

Usage: python -m benchmarks.bench_coco
Results: benchmarks/results/coco_yolov8n.{json,md}
"""

from pathlib import Path

import click
import yaml

from benchmarks.bench_import import auto_artifact
from benchmarks.common import ROOT, SHARED, WORK, machine, markdown_table, require_dataset, write_results

COCO128 = SHARED / "coco128"
SOURCE = ROOT.parent / "shared" / "weights" / "ultralytics_yolov8n_coco_dequantized"
AUTO_MAX_DROP = 0.5
ULTRALYTICS_INT8 = SOURCE / "ultralytics_exports" / "yolov8n_full_integer_quant.tflite"


def half_split_datasets(work):
    """Two data.yaml files over coco128: (calibrate on A, score on B) and (calibrate on B, score on A)."""
    dataset_yaml = require_dataset(COCO128 / "data.yaml")
    names = yaml.safe_load(Path(dataset_yaml).read_text())["names"]
    images = sorted((COCO128 / "images").iterdir())
    halves = {"a": images[: len(images) // 2], "b": images[len(images) // 2 :]}
    for half, paths in halves.items():
        (work / f"half_{half}.txt").write_text("".join(f"{path.resolve()}\n" for path in paths))
    directions = {}
    for calibrate, score in (("a", "b"), ("b", "a")):
        path = work / f"calibrate_{calibrate}_score_{score}.yaml"
        config = {"path": str(work), "train": f"half_{calibrate}.txt", "val": f"half_{score}.txt"}
        path.write_text(yaml.safe_dump(dict(config, nc=len(names), names=names), sort_keys=False))
        directions[f"calibrate {calibrate.upper()}, score {score.upper()}"] = path
    return directions, {half: len(paths) for half, paths in halves.items()}


def recipes(work):
    """The int8 recipes measured, each calibrated on all of a half's images: TFLiteConverter's; ai-edge-quantizer's
    with its own ranges (the moving average on every tensor) and with tfyolo's default (the extremes on the
    prediction outputs, `tfyolo.quantization.aeq.choose_ranges`); the default with the class logits' range floored
    at a score of 1e-4 (`Recipe.min_score`); and the default with 16-bit activations in the layers that make the
    class logits."""
    from tfyolo.models.detect_head import CLASS_OUTPUT, OUTPUT_LAYERS
    from tfyolo.quantization.recipe import Recipe

    aeq = dict(mode="int8", quantizer="ai_edge_quantizer", io_type="int8", calibration_images=64)
    paths = []
    for recipe in (
        Recipe(name="int8", mode="int8", calibration_images=64),
        Recipe(name="int8_aeq_average_int8io", range_statistic="moving_average", **aeq),
        Recipe(name="int8_aeq_int8io", **aeq),
        Recipe(name="int8_aeq_floor_int8io", min_score=1e-4, **aeq),
        Recipe(name="int8_aeq_int16cls_int8io", int16_layers=OUTPUT_LAYERS[CLASS_OUTPUT], **aeq),
    ):
        path = work / f"{recipe.name}.yaml"
        path.write_text(recipe.to_yaml())
        paths.append(str(path))
    return ("fp32", *paths)


@click.command()
def main():
    from tfyolo.benchmark import interleaved_latency
    from tfyolo.console import TqdmProgress
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.evaluation.model_evaluation import evaluate_models
    from tfyolo.evaluation.runners import TFLiteRunner
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec

    model = SOURCE / "yolov8n_coco.keras"
    if not model.is_file() or not ULTRALYTICS_INT8.is_file():
        raise SystemExit(f"{SOURCE} not found: this benchmark needs ../shared/weights beside the project.")
    work = WORK / "coco_yolov8n"
    work.mkdir(parents=True, exist_ok=True)
    directions, sizes = half_split_datasets(work)
    rows, latency = [], None
    for direction, data in directions.items():
        out = work / direction.replace(", ", "_").replace(" ", "_").lower()
        spec = JobSpec(model=str(model), recipes=recipes(work), calibration=str(data), data=str(data), name="coco")
        report = run_job(spec, out, progress=TqdmProgress())
        failed = {row["recipe"]: row["error"] for row in report.rows if row.get("error")}
        if failed:
            raise SystemExit(f"{direction}: conversions failed: {failed}")
        dataset = DetectionDataset.from_data_yaml(data, "val")
        scored, _, _ = evaluate_models({"ultralytics int8": TFLiteRunner(ULTRALYTICS_INT8)}, dataset, "val")
        by_recipe = {row["recipe"]: row for row in report.rows}
        float_map = by_recipe["float"]["map50_95"]
        measured = [(f"tfyolo {name}", row) for name, row in by_recipe.items() if name != "float"]
        measured = [("float (Keras)", by_recipe["float"]), *measured, ("ultralytics int8", scored["ultralytics int8"])]
        for artifact, row in measured:
            rows.append(
                {
                    "direction": direction,
                    "artifact": artifact,
                    "map50_95": row["map50_95"],
                    "map50": row["map50"],
                    "delta_vs_float": 100 * (row["map50_95"] - float_map),
                    "path": row.get("path"),
                }
            )
        _, chosen = auto_artifact(model, data, out / "auto", max_drop=AUTO_MAX_DROP)
        rows.append(
            {
                "direction": direction,
                "artifact": f"tfyolo --auto --max-drop {AUTO_MAX_DROP} (chose {chosen['recipe']})",
                "map50_95": chosen["map50_95"],
                "map50": None,
                "delta_vs_float": chosen["delta_map50_95"],
                "path": None,
            }
        )
        if latency is None:
            contents = {
                f"tfyolo {name}": Path(row["path"]).read_bytes()
                for name, row in by_recipe.items()
                if name != "float" and row.get("path")
            }
            contents["ultralytics int8"] = ULTRALYTICS_INT8.read_bytes()
            latency = interleaved_latency(contents, num_threads=2, rounds=10)
    for row in rows:
        row["latency_ms_p50"] = latency["models"].get(row["artifact"], {}).get("latency_ms_p50")
    int8_latency = latency["models"]["tfyolo int8"]["latency_ms_p50"]
    for row in rows:
        row["latency_vs_int8"] = row["latency_ms_p50"] and row["latency_ms_p50"] / int8_latency
    goals = []
    for direction in directions:
        here = {row["artifact"]: row for row in rows if row["direction"] == direction}
        int8, int16 = here["tfyolo int8_aeq_int8io"], here["tfyolo int8_aeq_int16cls_int8io"]
        auto = next(row for name, row in here.items() if name.startswith("tfyolo --auto"))
        goals += [
            (f"{direction}: full int8 (int8_aeq_int8io) drop <= 0.5 pt", f"{int8['delta_vs_float']:+.2f} pt"),
            (
                f"{direction}: 16-bit class logits drop <= 0.3 pt at <= 1.3x int8's latency",
                f"{int16['delta_vs_float']:+.2f} pt at {int16['latency_vs_int8']:.2f}x",
            ),
            (f"{direction}: {auto['artifact']} within {AUTO_MAX_DROP} pt", f"{auto['delta_vs_float']:+.2f} pt"),
        ]
    columns = [
        ("direction", "calibration / scoring halves", None),
        ("artifact", "artifact", None),
        ("map50_95", "mAP50-95", "{:.4f}"),
        ("map50", "mAP50", "{:.4f}"),
        ("delta_vs_float", "vs float (pt)", "{:+.2f}"),
        ("latency_ms_p50", "p50 ms (2 thr)", "{:.1f}"),
        ("latency_vs_int8", "latency / tfyolo int8", "{:.2f}"),
    ]
    markdown = "\n".join(
        [
            "# 80 classes: the shared COCO YOLOv8n at 640 px, int8 recipes vs Ultralytics' full-integer export",
            "",
            markdown_table(rows, columns),
            "",
            markdown_table(
                [{"goal": goal, "measured": value} for goal, value in goals],
                [("goal", "goal", None), ("measured", "measured", None)],
            ),
            "",
            f"coco128 split by file name into halves A ({sizes['a']} images) and B ({sizes['b']}); each recipe is "
            "calibrated on one half and scored on the other. The images are COCO train2017: the float model has seen "
            "them. Latency: the first direction's artifacts in one interleaved run, load average "
            f"{latency['load_average'][0]:.2f} -> {latency['load_average'][1]:.2f}.",
        ]
    )
    results = {"machine": machine(), "rows": rows, "goals": dict(goals), "latency": latency}
    write_results("coco_yolov8n", results, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
