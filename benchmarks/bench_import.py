"""The head-to-head on the same weights (issue: bring your own YOLOv8): Ultralytics' own TFLite exports of its
PennFudan YOLOv8n against the same checkpoint brought in with `tfyolo import` and converted by tfyolo.

Every artifact is scored with tfyolo's evaluator on the same 51 val images and timed in one interleaved run.
tfyolo's int8 is calibrated on the train split, as Ultralytics' was.

Usage: python -m benchmarks.bench_import
"""

import json
import shutil

from benchmarks.common import PENNFUDAN, ROOT, WORK, machine, markdown_table, require_dataset, write_results

WEIGHTS = ROOT.parent / "shared" / "weights" / "ultralytics_yolov8n_pennfudan"


def main():
    from tfyolo.benchmark import interleaved_latency
    from tfyolo.cli.convert import run_conversions
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.evaluation.model_evaluation import evaluate_models
    from tfyolo.evaluation.runners import TFLiteRunner
    from tfyolo.importers.ultralytics_import import import_weights
    from tfyolo.quantization.recipes_dir import resolve_recipe

    data = require_dataset(PENNFUDAN)
    if not (WEIGHTS / "best.pt").is_file():
        raise SystemExit(f"{WEIGHTS} not found: this benchmark needs ../shared/weights beside the project.")
    work = WORK / "import_pennfudan"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    model, metadata = import_weights(WEIGHTS / "best.pt")
    model.save(work / "ul_penn.keras")
    (work / "metadata.json").write_text(json.dumps(dict(metadata, data=str(data))))
    report = run_conversions(
        work / "ul_penn.keras",
        [resolve_recipe("fp32"), resolve_recipe("int8")],
        data,
        data,
        "val",
        work,
        "tfyolo",
        2,
        False,
        True,
    )
    dataset = DetectionDataset.from_data_yaml(data, "val")
    ultralytics = {
        "ultralytics_fp32": WEIGHTS / "yolov8n_pennfudan_320_fp32.tflite",
        "ultralytics_int8": WEIGHTS / "yolov8n_pennfudan_320_int8.tflite",
    }
    runners = {name: TFLiteRunner(path) for name, path in ultralytics.items()}
    scored, _, _ = evaluate_models(runners, dataset, "val")
    rows = [
        {"artifact": f"tfyolo {row['recipe']}", "map50_95": row["map50_95"], "map50": row["map50"]}
        for row in report["rows"]
        if row["recipe"] != "float"
    ]
    rows += [
        {"artifact": name.replace("_", " "), "map50_95": r["map50_95"], "map50": r["map50"]}
        for name, r in scored.items()
    ]
    contents = {
        f"tfyolo {row['recipe']}": (work / f"tfyolo_{row['recipe']}.tflite").read_bytes()
        for row in report["rows"]
        if row["recipe"] != "float"
    }
    contents.update({name.replace("_", " "): path.read_bytes() for name, path in ultralytics.items()})
    latency = interleaved_latency(contents, num_threads=2, rounds=20)
    for row in rows:
        row["latency_ms_p50"] = latency["models"][row["artifact"]]["latency_ms_p50"]
    reference = next(row for row in rows if row["artifact"] == "ultralytics fp32")
    ul_int8 = next(row for row in rows if row["artifact"] == "ultralytics int8")
    for row in rows:
        row["delta_vs_ul_fp32"] = 100 * (row["map50_95"] - reference["map50_95"])
        row["latency_vs_ul_int8"] = row["latency_ms_p50"] / ul_int8["latency_ms_p50"]
    columns = [
        ("artifact", "artifact", None),
        ("map50_95", "mAP50-95", "{:.4f}"),
        ("map50", "mAP50", "{:.4f}"),
        ("delta_vs_ul_fp32", "vs Ultralytics fp32 (pt)", "{:+.2f}"),
        ("latency_ms_p50", "p50 ms (2 thr, interleaved)", "{:.2f}"),
        ("latency_vs_ul_int8", "latency / Ultralytics int8", "{:.2f}"),
    ]
    markdown = "\n".join(
        [
            "# The same Ultralytics YOLOv8n (PennFudan, 320 px): its own TFLite exports vs `tfyolo import` + convert",
            "",
            markdown_table(rows, columns),
            "",
            f"All scored by tfyolo-eval on PennFudan val (51 images); latency: one interleaved run, load average "
            f"{latency['load_average'][0]:.2f} -> {latency['load_average'][1]:.2f}. tfyolo int8 calibrated on the "
            "train split (as Ultralytics' int8 was).",
        ]
    )
    write_results("import_pennfudan", {"machine": machine(), "rows": rows, "latency": latency}, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
