"""The head-to-head on the same weights, for every family: Ultralytics' own TFLite exports of its PennFudan YOLOv8n,
YOLO11n and YOLO26n against the same checkpoints brought in with `tfyolo import` and converted by tfyolo (YOLO26,
with its two heads: `benchmarks/bench_import_yolo26.py`).

tfyolo's candidates: fp32, int8 PTQ, int8 QAT (a short fine-tune of the imported model) and `tfyolo convert
--auto --max-drop 0.3`. Every artifact is scored with tfyolo's evaluator on the same 51 val images and timed in one
interleaved run. tfyolo's int8 is calibrated on the train split, as Ultralytics' was.

Usage: python -m benchmarks.bench_import [--family yolov8 --family yolo11 --family yolo26] [--qat-epochs 5]
Results: benchmarks/results/import_pennfudan_<family>.{json,md}
"""

import ast
import shutil
from pathlib import Path

import click
import numpy as np

from benchmarks.bench_qat import qat_finetune
from benchmarks.common import PENNFUDAN, ROOT, WORK, machine, markdown_table, require_dataset, write_results
from tfyolo.evaluation.runners import END2END_WIDTH, ULTRALYTICS_OUTPUT, decode_ultralytics, decode_ultralytics_end2end

SHARED_WEIGHTS = ROOT.parent / "shared" / "weights"
# family -> (its shared folder, the file prefix of Ultralytics' exports there)
SOURCES = {
    "yolov8": ("ultralytics_yolov8n_pennfudan", "yolov8n_pennfudan_320"),
    "yolo11": ("ultralytics_yolo11n_pennfudan", "yolo11n_pennfudan_320"),
    "yolo26": ("ultralytics_yolo26n_pennfudan", "yolo26n_pennfudan_320"),
}
# Goals of the issues that asked for each family's head-to-head.
GOALS = {
    "yolov8": {"int8_within": 0.3, "above_ultralytics": 0.0, "latency_ratio": 0.8},
    "yolo11": {"int8_within": 0.3, "above_ultralytics": 1.0, "latency_ratio": 0.85},
}


def family_weights(family):
    """(the family's folder of Ultralytics artifacts in ../shared/weights, the file prefix of its exports there)."""
    folder, prefix = SOURCES[family]
    weights = SHARED_WEIGHTS / folder
    if not (weights / "best.pt").is_file():
        raise SystemExit(f"{weights} not found: this benchmark needs ../shared/weights beside the project.")
    return weights, prefix


def fresh_work(name):
    """An empty benchmarks/work/<name>."""
    work = WORK / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


def auto_artifact(model, data, out, max_drop):
    """`convert --auto --max-drop` as a job; returns (artifact path, chosen candidate row)."""
    from tfyolo.console import TqdmProgress
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec

    spec = JobSpec(model=str(model), auto_max_drop=max_drop, calibration=str(data), data=str(data))
    report = run_job(spec, out, progress=TqdmProgress())
    if not report.artifacts:
        raise SystemExit(f"--auto --max-drop {max_drop}: {report.verdict.reason}.")
    return report.artifacts[0].path, report.auto["chosen"]


class OnnxRuntimeRunner:
    """The source ONNX under ONNX Runtime: the float reference the import must match. onnxruntime is a test extra,
    so this runner lives here, not in the library. A YOLO26 end-to-end export's (1, 300, 6) rows are read as
    tfyolo-eval reads its LiteRT twin (top-k already applied)."""

    def __init__(self, path):
        import onnxruntime

        self.description = str(path)
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        shape = self.session.get_inputs()[0].shape
        self.input_size = int(shape[-1])
        output_shape = self.session.get_outputs()[0].shape
        self.end2end = output_shape[-1] == END2END_WIDTH
        self.layout = "ultralytics_end2end" if self.end2end else "ultralytics"
        self.postprocess = "topk" if self.end2end else "nms"
        names = self.session.get_modelmeta().custom_metadata_map.get("names", "{}")
        self.num_classes = len(ast.literal_eval(names)) if self.end2end else int(output_shape[1]) - 4

    def predict_raw(self, batch):
        outputs = [self.session.run(None, {"images": image[None].transpose(0, 3, 1, 2)})[0] for image in batch]
        return {ULTRALYTICS_OUTPUT: np.concatenate(outputs)}

    def decode(self, raw):
        if self.end2end:
            return decode_ultralytics_end2end(raw, self.input_size, self.num_classes)
        return decode_ultralytics(raw, self.input_size, normalized=False)


@click.command()
@click.option("--family", "families", multiple=True, type=click.Choice(sorted(SOURCES)), help="[default: all]")
@click.option("--qat-epochs", default=5, show_default=True)
def main(families, qat_epochs):
    for family in families or sorted(SOURCES, key=list(SOURCES).index):
        head_to_head(family, qat_epochs)


def head_to_head(family, qat_epochs):
    from tfyolo.benchmark import interleaved_latency
    from tfyolo.console import TqdmProgress
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.evaluation.model_evaluation import evaluate_models
    from tfyolo.evaluation.runners import TFLiteRunner
    from tfyolo.importers.ultralytics_import import import_weights
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec
    from tfyolo.models.model_io import save_model_atomic

    data = require_dataset(PENNFUDAN)
    weights, prefix = family_weights(family)
    work = fresh_work(f"import_pennfudan_{family}")
    if family == "yolo26":
        from benchmarks.bench_import_yolo26 import head_to_head_yolo26

        return head_to_head_yolo26(weights, prefix, work, qat_epochs)
    model, metadata = import_weights(weights / "best.pt")
    save_model_atomic(model, work / "ul_penn.keras", dict(metadata, data=str(data)))
    qat_history, qat_seconds = qat_finetune(work / "ul_penn.keras", data, work / "qat", qat_epochs, batch=8)
    auto_path, auto_chosen = auto_artifact(work / "ul_penn.keras", data, work / "auto", max_drop=0.3)
    spec = JobSpec(
        model=str(work / "ul_penn.keras"),
        recipes=("fp32", "int8"),
        calibration=str(data),
        data=str(data),
        name="tfyolo",
        qat_model=str(work / "qat" / "best.h5"),
    )
    report = run_job(spec, work, progress=TqdmProgress())
    dataset = DetectionDataset.from_data_yaml(data, "val")
    external = {
        "tfyolo auto": TFLiteRunner(auto_path),
        "ultralytics fp32": TFLiteRunner(weights / f"{prefix}_fp32.tflite"),
        "ultralytics int8": TFLiteRunner(weights / f"{prefix}_int8.tflite"),
        "onnx runtime (source float)": OnnxRuntimeRunner(weights / "best.onnx"),
    }
    scored, _, _ = evaluate_models(external, dataset, "val")
    converted = {f"tfyolo {row['recipe']}": row for row in report.rows if row["recipe"] != "float"}
    rows = [{"artifact": name, "map50_95": r["map50_95"], "map50": r["map50"]} for name, r in converted.items()]
    rows += [{"artifact": name, "map50_95": r["map50_95"], "map50": r["map50"]} for name, r in scored.items()]
    failed = {name: row["error"] for name, row in converted.items() if row.get("error")}
    if failed:
        raise SystemExit(f"conversions failed: {failed}")
    contents = {name: Path(row["path"]).read_bytes() for name, row in converted.items()}
    contents.update({name: Path(runner.description).read_bytes() for name, runner in external.items()})
    del contents["onnx runtime (source float)"]
    latency = interleaved_latency(contents, num_threads=2, rounds=20)
    by_name = {row["artifact"]: row for row in rows}
    reference, ul_int8 = by_name["onnx runtime (source float)"], by_name["ultralytics int8"]
    for row in rows:
        row["latency_ms_p50"] = latency["models"].get(row["artifact"], {}).get("latency_ms_p50")
    for row in rows:
        row["delta_vs_float"] = 100 * (row["map50_95"] - reference["map50_95"])
        row["latency_vs_ul_int8"] = row["latency_ms_p50"] and row["latency_ms_p50"] / ul_int8["latency_ms_p50"]
    int8_rows = [row for name, row in by_name.items() if name in ("tfyolo int8", "tfyolo qat_int8")]

    def each(measure):
        return "; ".join(f"{row['artifact']}: {measure(row)}" for row in int8_rows)

    goal = GOALS[family]
    above = f"at least {goal['above_ultralytics']:g} pt above" if goal["above_ultralytics"] else "at or above"
    goals = [
        ("imported fp32 within 0.1 pt of ONNX Runtime float", f"{by_name['tfyolo fp32']['delta_vs_float']:+.2f} pt"),
        (f"tfyolo int8 within {goal['int8_within']} pt of float", each(lambda row: f"{row['delta_vs_float']:+.2f} pt")),
        (
            f"tfyolo int8 {above} Ultralytics int8",
            each(lambda row: f"{100 * (row['map50_95'] - ul_int8['map50_95']):+.2f} pt"),
        ),
        (
            f"tfyolo int8 latency <= {goal['latency_ratio']}x Ultralytics int8",
            each(lambda row: f"{row['latency_vs_ul_int8']:.2f}x"),
        ),
    ]
    columns = [
        ("artifact", "artifact", None),
        ("map50_95", "mAP50-95", "{:.4f}"),
        ("map50", "mAP50", "{:.4f}"),
        ("delta_vs_float", "vs ONNX Runtime float (pt)", "{:+.2f}"),
        ("latency_ms_p50", "p50 ms (2 thr, interleaved)", "{:.2f}"),
        ("latency_vs_ul_int8", "latency / Ultralytics int8", "{:.2f}"),
    ]
    markdown = "\n".join(
        [
            f"# The same Ultralytics {family}n (PennFudan, 320 px): its LiteRT exports vs `tfyolo import` + convert",
            "",
            markdown_table(rows, columns),
            "",
            markdown_table(
                [{"goal": goal, "measured": value} for goal, value in goals],
                [("goal", "goal", None), ("measured", "measured", None)],
            ),
            "",
            f"All scored by tfyolo-eval on PennFudan val (51 images); latency: one interleaved run, load average "
            f"{latency['load_average'][0]:.2f} -> {latency['load_average'][1]:.2f}. tfyolo int8 calibrated on the "
            f"train split (as Ultralytics' int8 was). QAT: {qat_epochs} epochs from the imported model "
            f"({qat_seconds:.0f} s). auto chose {auto_chosen['recipe']} "
            f"{auto_chosen.get('keep_float') or ''}".rstrip()
            + ".",
        ]
    )
    results = {"machine": machine(), "family": family, "rows": rows, "goals": dict(goals), "latency": latency}
    results.update(qat_epochs=qat_epochs, qat_history=qat_history, auto_chosen=auto_chosen)
    write_results(f"import_pennfudan_{family}", results, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
