"""Where the 80-class int8 loss goes (the findings behind `make bench-coco`): the shared COCO YOLOv8n calibrated on
one half of coco128 and scored on the other, both ways, one recipe change at a time, each through the same
conversion, integer-only check, evaluation and timing as `tfyolo convert --auto`'s candidates.

Rows: the number of calibration images, ai-edge-quantizer's own ranges against tfyolo's default, the class logits'
score floor on TFLiteConverter, 16-bit activations on the box output's layers. The other rows are in `make
bench-coco`. (Keeping an output in float is not a row: TFLiteConverter's denylist does not reach the concatenation
over the levels, which stays int8 on the shared scale; a 16-bit output is the measurement instead.)

Usage: python -m benchmarks.study_coco_int8
Results: benchmarks/results/coco_yolov8n_study.{json,md}
"""

import click

from benchmarks.bench_coco import COCO128, SOURCE, half_split_datasets
from benchmarks.common import WORK, machine, markdown_table, write_results


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
