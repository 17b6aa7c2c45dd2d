"""Where the built-in int8's error enters each COCO model, layer by layer, on images no COCO model has seen.

For each family, the fp32 TFLite and bench-coco's seed-0 `int8` (ai-edge-quantizer keeps the fp32 model's tensor
names, so every int8 tensor has its float twin) run side by side on the first coco_val150 images with every tensor
kept (reference kernels). Per tensor:
- the propagated error: RMS of (int8, dequantized) minus float over the standard deviation of the float values, a
  noise-to-signal ratio (0.1 is 20 dB); summarized per section of the network;
- the median channel's share of the int8 range: the median over channels of each channel's largest |value| on
  these images, over the range's larger end. A few outlier channels make a per-tensor range wide and give every
  other channel few of its 256 steps.
And where it counts, on the anchors the float model is confident about (best class score above 0.25): the decoded
boxes' error in pixels and the best class score's error.

Usage: python -m benchmarks.study_int8_layers [--family yolo26n] [--images 8] [--int8 FILE --name NAME]
(after `python -m benchmarks.bench_coco`, whose seed-0 int8 files it reads; `--int8` measures another int8 file of
the one family named, made by ai-edge-quantizer from the same model, and writes coco_int8_layers_NAME)
Results: benchmarks/results/coco_int8_layers.{json,md}
"""

from pathlib import Path

import click
import numpy as np

from benchmarks.bench_coco import FAMILIES, SCORING, family_model
from benchmarks.common import WORK, machine, markdown_table, seeded_recipes, write_results
from tfyolo.models.model_family import SECTIONS

CONFIDENT = 0.25
# Images for the confident anchors' errors (fast kernels, decoded outputs only): about 300 anchors on YOLO26n.
CONFIDENT_IMAGES = 48
# Ops whose output is the model's boundary, not a layer's arithmetic.
SKIPPED_OPS = ("QUANTIZE", "DEQUANTIZE")


def layer_of(tensor_name):
    """The Keras layer a TFLite tensor name carries ("yolo_detector/<layer>/..." in the last of its ";"-joined
    parts that has one), or None."""
    for part in reversed(tensor_name.split(";")):
        path = part.split("/")
        if len(path) > 1 and path[0] == "yolo_detector":
            return path[1]
    return None


def fp32_artifact(family, model):
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec

    work = WORK / "coco_int8_layers" / family
    spec = JobSpec(model=str(model), recipes=seeded_recipes(work, 0, ("fp32",)), evaluate=False, name=family)
    (row,) = run_job(spec, work).rows
    return row["path"]


class AllTensors:
    """An interpreter that keeps every tensor (no XNNPACK, which would fuse ops): each op output, dequantized."""

    def __init__(self, path):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.interpreter = Interpreter(
            model_path=str(path),
            experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        self.interpreter.allocate_tensors()
        details = {detail["index"]: detail for detail in self.interpreter.get_tensor_details()}
        kept = [op for op in self.interpreter._get_ops_details() if op["op_name"] not in SKIPPED_OPS]
        self.outputs = {details[index]["name"]: details[index] for op in kept for index in op["outputs"]}
        self.ops = {details[index]["name"]: op["op_name"] for op in kept for index in op["outputs"]}

    def run(self, image):
        self.interpreter.set_tensor(self.interpreter.get_input_details()[0]["index"], image[None])
        self.interpreter.invoke()
        values = {}
        for name, detail in self.outputs.items():
            value = self.interpreter.get_tensor(detail["index"]).astype(np.float64)
            scale, zero_point = detail["quantization"]
            values[name] = (value - zero_point) * scale if scale else value
        return values

    def range_end(self, name):
        scale, zero_point = self.outputs[name]["quantization"]
        return scale * max(zero_point + 128, 127 - zero_point)


def tensor_rows(fp32, int8, images, family):
    """Per int8 tensor with a float twin: noise-to-signal and the median channel's share of the range; its section
    is the one `family` (a ModelFamily) gives its layer."""
    shared = [name for name in int8.outputs if name in fp32.outputs and int8.outputs[name]["quantization"][0]]
    sums = {name: np.zeros(4) for name in shared}  # squared error, values, squared values, count
    channel_max = {}
    for image in images:
        reference, quantized = fp32.run(image), int8.run(image)
        for name in shared:
            float_values, error = reference[name], quantized[name] - reference[name]
            sums[name] += [np.square(error).sum(), float_values.sum(), np.square(float_values).sum(), error.size]
            peaks = np.abs(float_values).reshape(-1, float_values.shape[-1]).max(axis=0)
            channel_max[name] = np.maximum(channel_max.get(name, peaks), peaks)
    rows = []
    for position, name in enumerate(shared):
        squared_error, total, squared, count = sums[name]
        variance = squared / count - (total / count) ** 2
        rows.append(
            {
                "position": position,
                "tensor": name.split(";")[-1],
                "op": int8.ops[name],
                "section": family.section_of(layer_of(name)) if layer_of(name) else None,
                "noise_to_signal": float(np.sqrt(squared_error / count / max(variance, 1e-12))),
                "median_channel_share": float(np.median(channel_max[name]) / int8.range_end(name)),
            }
        )
    return rows


def confident_errors(fp32_path, int8_path, images):
    """Decoded box error (pixels) and best class score error on the anchors the float model is confident about."""
    from tfyolo.evaluation.runners import TFLiteRunner

    reference, quantized = TFLiteRunner(str(fp32_path)), TFLiteRunner(str(int8_path))
    box_errors, score_errors = [], []
    for image in images:
        float_boxes, float_scores = reference.predict(image[None])
        int8_boxes, int8_scores = quantized.predict(image[None])
        confident = float_scores[0].max(-1) > CONFIDENT
        box_errors.append(reference.input_size * np.abs(int8_boxes[0] - float_boxes[0])[confident].ravel())
        score_errors.append(np.abs(int8_scores[0].max(-1) - float_scores[0].max(-1))[confident])
    boxes, scores = np.concatenate(box_errors), np.concatenate(score_errors)
    return {"anchors": int(scores.size), "box_error_px": float(boxes.mean()), "score_error": float(scores.mean())}


def family_result(family, image_count, int8_path=None):
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.data.pipeline import evaluation_batches
    from tfyolo.metadata import find_model_metadata
    from tfyolo.models.detector_metadata import family_of

    model, work = family_model(family)
    int8_path = int8_path or work / "seed0" / f"{family}_int8.tflite"
    if not int8_path.is_file():
        raise SystemExit(f"{int8_path} not found: run python -m benchmarks.bench_coco --family {family} first.")
    fp32_path = fp32_artifact(family, model)
    dataset = DetectionDataset.from_data_yaml(SCORING, "val")
    images = [image for _, batch, _ in evaluation_batches(dataset, 640, 1) for image in batch][:CONFIDENT_IMAGES]
    model_family = family_of(find_model_metadata(model))
    rows = tensor_rows(AllTensors(fp32_path), AllTensors(int8_path), images[:image_count], model_family)
    sections = {}
    for section in SECTIONS:
        inside = [row for row in rows if row["section"] == section]
        ratios = [row["noise_to_signal"] for row in inside]
        shares = [row["median_channel_share"] for row in inside]
        sections[section] = {
            "tensors": len(inside),
            "median_noise_to_signal": float(np.median(ratios)),
            "worst_noise_to_signal": float(np.max(ratios)),
            "narrow_tensors": int(sum(share < 0.1 for share in shares)),
        }
    return {
        "family": family,
        "int8": str(int8_path),
        "images": image_count,
        "sections": sections,
        "confident": confident_errors(fp32_path, int8_path, images),
        "narrowest_channels": sorted(rows, key=lambda row: row["median_channel_share"])[:6],
        "tensors": rows,
    }


def markdown(results):
    section_rows = [
        {"family": result["family"], "section": section, **stats}
        for result in results
        for section, stats in result["sections"].items()
    ]
    narrow_rows = [{"family": result["family"], **row} for result in results for row in result["narrowest_channels"]]
    return "\n".join(
        [
            "# Where the int8's error enters, layer by layer (coco_val150)",
            "",
            "Files: " + "; ".join(f"{result['family']} `{Path(result['int8']).name}`" for result in results) + ".",
            "",
            "Noise-to-signal: RMS of the int8 tensor (dequantized) minus its float twin over the float values' "
            "standard deviation, the error propagated from the input up to that tensor. Median channel share: the "
            "median channel's largest |value| over the int8 range's larger end (outlier channels make it small); "
            "the last axis is taken as the channels, which for the attention's softmax is the keys, so its share "
            "there is how small a typical attention weight is, not an outlier channel.",
            "",
            markdown_table(
                section_rows,
                [
                    ("family", "family", None),
                    ("section", "section", None),
                    ("tensors", "tensors", None),
                    ("median_noise_to_signal", "median noise/signal", "{:.3f}"),
                    ("worst_noise_to_signal", "worst", "{:.3f}"),
                    ("narrow_tensors", "tensors whose median channel uses < 10% of its range", None),
                ],
            ),
            "",
            "On the anchors the float model scores above 0.25 (decoded outputs):",
            "",
            markdown_table(
                [{"family": result["family"], **result["confident"]} for result in results],
                [
                    ("family", "family", None),
                    ("anchors", "confident anchors", None),
                    ("box_error_px", "box error (px, mean)", "{:.2f}"),
                    ("score_error", "best class score error (mean)", "{:.4f}"),
                ],
            ),
            "",
            "The tensors whose median channel uses the least of the range:",
            "",
            markdown_table(
                narrow_rows,
                [
                    ("family", "family", None),
                    ("tensor", "tensor", None),
                    ("median_channel_share", "median channel share", "{:.3f}"),
                    ("noise_to_signal", "noise/signal", "{:.3f}"),
                ],
            ),
            "",
            "Command: `python -m benchmarks.study_int8_layers` (after `python -m benchmarks.bench_coco`).",
        ]
    )


@click.command()
@click.option("--family", "families", multiple=True, type=click.Choice(sorted(FAMILIES)))
@click.option("--images", "image_count", default=8, show_default=True)
@click.option("--int8", "int8_path", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--name", default=None, help="Results suffix, with --int8.")
def main(families, image_count, int8_path, name):
    if int8_path and (len(families) != 1 or not name):
        raise click.UsageError("--int8 measures one family's file: give one --family and a --name for the results.")
    families = families or sorted(FAMILIES)
    results = [family_result(family, image_count, int8_path and Path(int8_path)) for family in families]
    result_name = f"coco_int8_layers_{name}" if int8_path else "coco_int8_layers"
    write_results(result_name, {"machine": machine(), "results": results}, markdown(results))


if __name__ == "__main__":
    main()
