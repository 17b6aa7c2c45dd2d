"""Which calibration ranges ai-edge-quantizer's int8 should keep (`Recipe.range_statistic`), on every family: the
Ultralytics PennFudan checkpoints imported (YOLOv8n, YOLO11n, YOLO26n with each head), calibrated on the train
split and scored on the 51 val images, each against its own float, through the same conversion, integer-only check
and evaluation as `tfyolo convert --auto`'s candidates. The COCO rows are in `make bench-coco`.

Rows per model: the moving average on every tensor (ai-edge-quantizer's own), the extremes on every tensor, the
extremes on the prediction outputs with the average elsewhere (`outputs_min_max`), the default (those extremes, the
range of least squared error elsewhere: `outputs_mse`), and the default with the score floor at 1e-4.

Usage: python -m benchmarks.study_ranges
Results: benchmarks/results/ranges_pennfudan.{json,md}
"""

from benchmarks.bench_import import family_weights
from benchmarks.common import PENNFUDAN, WORK, machine, markdown_table, require_dataset, write_results

# (family, head); None: the family's only head.
MODELS = (("yolov8", None), ("yolo11", None), ("yolo26", "one2one"), ("yolo26", "one2many"))


def study_recipes():
    from tfyolo.quantization.recipe import Recipe

    aeq = dict(mode="int8", quantizer="ai_edge_quantizer", io_type="int8")
    return [
        Recipe(name="int8_aeq_average_int8io", range_statistic="moving_average", **aeq),
        Recipe(name="int8_aeq_minmax_int8io", range_statistic="min_max", **aeq),
        Recipe(name="int8_aeq_outputs_average_int8io", range_statistic="outputs_min_max", **aeq),
        Recipe(name="int8_aeq_int8io", **aeq),
        Recipe(name="int8_aeq_floor_int8io", min_score=1e-4, **aeq),
    ]


def imported(family, head, data, work):
    from tfyolo.importers.ultralytics_import import import_weights
    from tfyolo.models.model_io import save_model_atomic

    path = work / f"{family}_{head or 'default'}.keras"
    if not path.is_file():
        weights, _ = family_weights(family)
        model, metadata = import_weights(weights / "best.pt", head=head)
        save_model_atomic(model, path, dict(metadata, data=str(data)))
    return path


def main():
    from tfyolo.console import TqdmProgress
    from tfyolo.jobs.auto_session import AutoSession
    from tfyolo.models.families import model_family

    data = require_dataset(PENNFUDAN)
    work = WORK / "ranges_pennfudan"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for family, head in MODELS:
        model = imported(family, head, data, work)
        session = AutoSession(str(model), str(data), str(data), "val", 100, 2, False, progress=TqdmProgress())
        label = f"{family}n" + (f" {head}" if head else "")
        rows.append({"model": label, "recipe": "float (Keras)", "map50_95": session.reference_metrics["map50_95"]})
        for recipe in study_recipes():
            row = session.measure(recipe).row()
            resolved = recipe.for_family(model_family(family)).range_statistic
            named = resolved if recipe.range_statistic else f"{resolved} (the family's)"
            rows.append({"model": label, "range_statistic": named, "min_score": recipe.min_score})
            rows[-1].update({key: row[key] for key in ("recipe", "map50_95", "delta_map50_95", "error")})
            print(f"{label} {recipe.name}: {row['error'] or format(row['delta_map50_95'], '+.2f') + ' pt'}", flush=True)
    write(rows)


def write(rows):
    columns = [
        ("model", "model", None),
        ("recipe", "recipe", None),
        ("range_statistic", "range_statistic", None),
        ("min_score", "min_score", None),
        ("map50_95", "mAP50-95", "{:.4f}"),
        ("delta_map50_95", "vs float (pt)", "{:+.2f}"),
        ("error", "error", None),
    ]
    markdown = "\n".join(
        [
            "# ai-edge-quantizer int8: which calibration ranges, per family (PennFudan, 320 px)",
            "",
            markdown_table(rows, columns),
            "",
            "Calibrated on the train split (100 images), scored by tfyolo-eval on the 51 val images (the one-to-one "
            "head with top-k, the others with NMS), each against its own float.",
        ]
    )
    write_results("ranges_pennfudan", {"machine": machine(), "rows": rows}, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
