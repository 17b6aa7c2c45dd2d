"""Where the 80-class int8 loss goes, on seen images: the shared COCO YOLOv8n calibrated on one half of coco128
(COCO train2017) and scored on the other, both ways, one recipe change at a time, each through the same conversion,
integer-only check, evaluation and timing as `tfyolo convert --auto`'s candidates.

Rows: the number of calibration images, ai-edge-quantizer's own ranges against tfyolo's default, the class logits'
score floor on TFLiteConverter, 16-bit activations on the box output's layers. The plain rows on these halves are in
coco_yolov8n.md; `make bench-coco` measures on unseen images. (Keeping an output in float is not a row:
TFLiteConverter's denylist does not reach the concatenation over the levels, which stays int8 on the shared scale;
a 16-bit output is the measurement instead.)

Usage: python -m benchmarks.study_coco_int8
Results: benchmarks/results/coco_yolov8n_study.{json,md}
"""

from pathlib import Path

import click
import yaml

from benchmarks.common import ROOT, SHARED, WORK, machine, markdown_table, require_dataset, write_results

COCO128 = SHARED / "coco128"
SOURCE = ROOT.parent / "shared" / "weights" / "ultralytics_yolov8n_coco_dequantized"


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


def study_recipes():
    """(calibration images, Recipe) pairs, the plain int8 first: ai-edge-quantizer's default int8 on 16, 32 and all
    64 of the half's images, its own moving-average ranges, the score floor with each quantizer, and 16-bit
    activations on the box output's layers."""
    from tfyolo.models.detect_head import BOX_OUTPUT, OUTPUT_LAYERS
    from tfyolo.quantization.recipe import Recipe

    aeq = dict(mode="int8", quantizer="ai_edge_quantizer", io_type="int8")
    floor = 1e-4
    return [
        (64, Recipe(name="int8", mode="int8")),
        (64, Recipe(name="int8_floor", mode="int8", min_score=floor)),
        (16, Recipe(name="int8_aeq_int8io", **aeq)),
        (32, Recipe(name="int8_aeq_int8io", **aeq)),
        (64, Recipe(name="int8_aeq_int8io", **aeq)),
        (64, Recipe(name="int8_aeq_average_int8io", range_statistic="moving_average", **aeq)),
        (64, Recipe(name="int8_aeq_int16box_int8io", int16_layers=OUTPUT_LAYERS[BOX_OUTPUT], **aeq)),
    ]


@click.command()
@click.option("--only", multiple=True, help="Run only these recipe names.")
def main(only):
    from tfyolo.console import TqdmProgress
    from tfyolo.jobs.auto_session import AutoSession

    if not (SOURCE / "yolov8n_coco.keras").is_file() or not COCO128.is_dir():
        raise SystemExit("this study needs ../shared/weights and ../shared/datasets beside the project.")
    work = WORK / "coco_yolov8n"
    work.mkdir(parents=True, exist_ok=True)
    directions, _ = half_split_datasets(work)
    rows, floats = [], {}
    for direction, data in directions.items():
        session = AutoSession(
            str(SOURCE / "yolov8n_coco.keras"), str(data), str(data), "val", 64, 2, False, progress=TqdmProgress()
        )
        floats[direction] = session.reference_metrics["map50_95"]
        all_images = session.images
        for count, recipe in study_recipes():
            if only and recipe.name not in only:
                continue
            session.images = all_images[:count]
            row = {"direction": direction, "calibration_images": count, **session.measure(recipe).row()}
            rows.append(row)
            outcome = row["error"] or f"{row['delta_map50_95']:+.2f} pt"
            print(f"{direction}: {recipe.name} ({count} images): {outcome}", flush=True)
    columns = [
        ("direction", "calibration / scoring halves", None),
        ("recipe", "recipe", None),
        ("calibration_images", "calibration images", None),
        ("map50_95", "mAP50-95", "{:.4f}"),
        ("delta_map50_95", "vs float (pt)", "{:+.2f}"),
        ("latency_ms_p50", "p50 ms", "{:.1f}"),
        ("error", "error", None),
    ]
    markdown = "\n".join(
        [
            "# Where the 80-class int8 loss goes: COCO YOLOv8n at 640 px, both halves of coco128",
            "",
            "Float (Keras) mAP50-95: " + "; ".join(f"{name}: {value:.4f}" for name, value in floats.items()) + ".",
            "",
            markdown_table(rows, columns),
        ]
    )
    write_results("coco_yolov8n_study", {"machine": machine(), "floats": floats, "rows": rows}, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
