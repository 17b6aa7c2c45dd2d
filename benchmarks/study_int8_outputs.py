"""Where the built-in int8 loses on unseen 80-class images, per output: the int8 file's box distribution or its class
logits replaced by the float model's, image by image, and scored again.

For the shared COCO YOLOv8n, YOLO11n and YOLO26n (one-to-one, top-k): the built-in `int8` (ai-edge-quantizer,
tfyolo's ranges), calibrated on 100 coco128 images (seed 0), scored on coco_val150 in one lockstep pass against the
float model, with two hybrids beside it: int8 everywhere but the box output (float boxes), and int8 everywhere but
the class logits (float scores). What a hybrid wins back is what that output's int8 costs; what is left when both
are float is the error the two outputs inherit from the int8 network before them (not measured apart here).

Usage: python -m benchmarks.study_int8_outputs [--family yolo11n ...]
Results: benchmarks/results/coco_int8_outputs.{json,md}
"""

from pathlib import Path

import click
import numpy as np

from benchmarks.bench_coco import CALIBRATION, FAMILIES, SCORING, family_model
from benchmarks.common import RESULTS, load_json, machine, markdown_table, seeded_recipes, write_results

RESULT = "coco_int8_outputs"


class SharedRunner:
    """A runner whose predictions of the batch it last saw are kept, so that the hybrids built on it run it once
    per batch."""

    def __init__(self, runner):
        self.runner, self._batch, self._raw = runner, None, None

    def __getattr__(self, name):
        return getattr(self.runner, name)

    def predict_raw(self, batch):
        if self._batch is not batch:
            self._batch, self._raw = batch, self.runner.predict_raw(batch)
        return self._raw


class HybridRunner:
    """The int8 runner's outputs with `float_outputs` taken from the float runner instead; decoded as the int8
    file is."""

    def __init__(self, int8, float_runner, float_outputs):
        self.int8, self.float_runner, self.float_outputs = int8, float_runner, float_outputs
        self.description = f"{int8.description} with float {', '.join(float_outputs)}"

    def __getattr__(self, name):
        return getattr(self.int8, name)

    def predict_raw(self, batch):
        raw = dict(self.int8.predict_raw(batch))
        donor = self.float_runner.predict_raw(batch)
        raw.update({name: donor[name] for name in self.float_outputs})
        return raw


class OnGridRunner(HybridRunner):
    """A hybrid whose float outputs are rounded onto the int8 file's grid for them (the scale and zero point of the
    int8 tensor its DEQUANTIZE reads): what the output's own quantization costs, apart from the error the int8
    network before it adds."""

    def __init__(self, int8, float_runner, float_outputs):
        super().__init__(int8, float_runner, float_outputs)
        self.description += " on the int8 grid"
        details = {detail["name"]: detail for detail in int8.interpreter.get_tensor_details()}
        self.grids = {}
        for name in float_outputs:
            tensor = details[f"{int8.outputs[name]['name']}_int8"]
            scale, zero_point = tensor["quantization"]
            self.grids[name] = (scale, zero_point)

    def predict_raw(self, batch):
        raw = super().predict_raw(batch)
        for name, (scale, zero_point) in self.grids.items():
            steps = np.clip(np.round(raw[name] / scale) + zero_point, -128, 127)
            raw[name] = ((steps - zero_point) * scale).astype(np.float32)
        return raw


def int8_artifact(family, model, work):
    """The built-in int8 of `model`, calibrated on coco128 with seed 0 (bench-coco's seed-0 file when it exists)."""
    from tfyolo.console import TqdmProgress
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec

    existing = work / "seed0" / f"{family}_int8.tflite"
    if existing.is_file():
        return existing
    spec = JobSpec(
        model=str(model),
        recipes=seeded_recipes(work / "outputs_recipes", 0, ("int8",)),
        calibration=str(CALIBRATION),
        data=str(SCORING),
        evaluate=False,
        name=family,
    )
    report = run_job(spec, work / "outputs", progress=TqdmProgress())
    (row,) = [row for row in report.rows if row["recipe"] == "int8"]
    if row.get("error"):
        raise SystemExit(f"{family}: int8 failed: {row['error']}")
    return Path(row["path"])


def family_result(family):
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.evaluation.model_evaluation import evaluate_models
    from tfyolo.evaluation.runners import TFLiteRunner
    from tfyolo.jobs.model_runner import keras_runner
    from tfyolo.models.detect_head import BOX_OUTPUT, CLASS_OUTPUT

    model, work = family_model(family)
    artifact = int8_artifact(family, model, work)
    float_runner = SharedRunner(keras_runner(model))
    int8 = SharedRunner(TFLiteRunner(artifact))
    runners = {
        "int8": int8,
        "int8, float boxes": HybridRunner(int8, float_runner, (BOX_OUTPUT,)),
        "int8, float class logits": HybridRunner(int8, float_runner, (CLASS_OUTPUT,)),
        "int8, float boxes on the int8 output grid": OnGridRunner(int8, float_runner, (BOX_OUTPUT,)),
    }
    dataset = DetectionDataset.from_data_yaml(SCORING, "val")
    reports, _, reference = evaluate_models(runners, dataset, "val", float_runner)
    return {
        "family": family,
        "model": str(model),
        "artifact": str(artifact),
        "float_map50_95": reference.metrics["map50_95"],
        "rows": {name: {"map50_95": r["map50_95"], "delta": r["delta_map50_95"]} for name, r in reports.items()},
    }


def markdown(results):
    rows = []
    for family, result in results.items():
        for name, row in result["rows"].items():
            rows.append({"family": family, "row": name, "map": row["map50_95"], "delta": row["delta"]})
    return "\n".join(
        [
            "# Where int8 loses on unseen 80-class images, per output (coco_val150, calibration seed 0)",
            "",
            "The built-in `int8` of each shared COCO model (calibrated on 100 coco128 images), and the same file with "
            "its box distribution or its class logits replaced by the float model's, image by image; mAP50-95 "
            "against the float model on the same 150 val2017 images (`python -m benchmarks.study_int8_outputs`).",
            "",
            markdown_table(
                rows,
                [
                    ("family", "model", None),
                    ("row", "outputs", None),
                    ("map", "mAP50-95", "{:.4f}"),
                    ("delta", "vs float (pt)", "{:+.2f}"),
                ],
            ),
            "",
            "150 images are few: seed 0 alone, not the spread over seeds (bench-coco gives it for the plain int8).",
        ]
    )


@click.command()
@click.option("--family", "families", multiple=True, type=click.Choice(sorted(FAMILIES)), help="[default: all]")
def main(families):
    previous = RESULTS / f"{RESULT}.json"
    results = load_json(previous)["results"] if previous.is_file() else {}
    for family in families or FAMILIES:
        results[family] = family_result(family)
        ordered = {key: results[key] for key in FAMILIES if key in results}
        write_results(RESULT, {"machine": machine(), "results": ordered}, markdown(ordered))
    print(markdown({key: results[key] for key in FAMILIES if key in results}))


if __name__ == "__main__":
    main()
