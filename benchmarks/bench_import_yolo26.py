"""YOLO26n's head-to-head (`make bench-import` runs it with the other families): the same Ultralytics PennFudan
checkpoint imported twice, ending in its one-to-one head (top-k, no NMS) and in its one-to-many head (NMS), each
converted by tfyolo, beside Ultralytics' own exports of the same weights: fp32 end-to-end, fp32 one-to-many and
its int8 (one-to-many: Ultralytics exports no int8 of the one-to-one head). Each branch is compared with its own
float; every artifact is scored by tfyolo-eval on the 51 val images and timed in one interleaved run, and the
post-processing (top-k against NMS, at confidence 0.001 and 0.25) is timed interleaved on the same decoded outputs.
The one-to-one head also gets short QAT fine-tunes (its own loss: one anchor per object), one per seed of
`QAT_SEEDS` (the seed draws the calibration images that seed the ranges and the order of the batches), and the int8
of each; the int8 of the QAT model before any fine-tune (ranges seeded only) shows what the fine-tune adds.

Usage: python -m benchmarks.bench_import --family yolo26
Results: benchmarks/results/import_pennfudan_yolo26.{json,md}
"""

import time
from pathlib import Path

import numpy as np

from benchmarks.common import PENNFUDAN, machine, markdown_table, require_dataset, write_results

HEADS = ("one2one", "one2many")
GOALS = {"one2one_within": 0.5, "one2many_within": 0.3}
# Each head's --auto search runs at its goal's budget.
AUTO_MAX_DROP = {"one2one": GOALS["one2one_within"], "one2many": GOALS["one2many_within"]}
CONFIDENCES = (0.001, 0.25)
# A short QAT run on 119 images moves by about a point from run to run: its goal is read on the worst seed.
QAT_SEEDS = (0, 1, 2)


def recipes(work):
    """fp32; the built-in int8 (ai-edge-quantizer with tfyolo's ranges) with float and int8 I/O; TFLiteConverter's
    int8; ai-edge-quantizer's int8 with its own ranges (the moving average on every tensor); and the built-in int8
    with the class score floor at 1e-4."""
    from tfyolo.quantization.recipe import Recipe

    aeq = dict(mode="int8", quantizer="ai_edge_quantizer", io_type="int8")
    paths = []
    for recipe in (
        Recipe(name="int8_average_int8io", range_statistic="moving_average", **aeq),
        Recipe(name="int8_floor_int8io", min_score=1e-4, **aeq),
    ):
        path = work / f"{recipe.name}.yaml"
        path.write_text(recipe.to_yaml())
        paths.append(str(path))
    return ("fp32", "int8", "int8_int8io", "int8_tflite", *paths)


def postprocess_latency(decoded, rounds=15):
    """Per image ms (median) of each selection on the same decoded outputs, interleaved round by round.

    decoded: {name: (postprocess kind, [(boxes in pixels, scores) per image])}."""
    from tfyolo.ops.nms import NMSConfig
    from tfyolo.ops.topk import select_detections

    times = {(name, conf): [] for name in decoded for conf in CONFIDENCES}
    for round_index in range(rounds):
        order = list(times) if round_index % 2 == 0 else list(reversed(times))
        for name, conf in order:
            kind, images = decoded[name]
            select, config = select_detections(kind), NMSConfig(confidence_threshold=conf)
            started = time.perf_counter()
            for boxes, scores in images:
                select(boxes, scores, config)
            times[(name, conf)].append((time.perf_counter() - started) * 1000.0 / len(images))
    return {f"{name} @ {conf}": float(np.median(values)) for (name, conf), values in times.items()}


def qat_rows(model_path, work, data, dataset, float_map, qat, contents):
    """The one-to-one QAT rows beyond the job's (which converts the first seed's model): the int8 of the QAT model
    with its ranges seeded and no fine-tune, and the int8 of every other seed's fine-tune."""
    from tfyolo.data.calibration_images import load_calibration_images
    from tfyolo.evaluation.model_evaluation import evaluate_models
    from tfyolo.evaluation.runners import TFLiteRunner
    from tfyolo.jobs.conversion import QAT_RECIPES
    from tfyolo.metadata import find_model_metadata
    from tfyolo.models.detect_head import CLASS_OUTPUT
    from tfyolo.models.detector_metadata import family_of
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.qat.qat_io import load_any_detector
    from tfyolo.qat.qat_model import build_qat_model, seed_quantization_ranges
    from tfyolo.quantization.artifact import artifact_metadata, finalize_artifact
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.recipes_dir import resolve_recipe

    # The recipe a QAT model's int8-I/O row is converted with in every job (a QAT model carries its ranges).
    recipe = resolve_recipe(QAT_RECIPES["qat_int8_int8io"])
    metadata = find_model_metadata(model_path)
    float_model = load_keras_model(model_path)
    size, classes = int(float_model.input_shape[1]), int(float_model.output_shape[CLASS_OUTPUT][-1])

    def artifact(model):
        """The int8 bytes as `tfyolo convert` writes them: checked integer-only, the metadata (its head, hence
        top-k) embedded."""
        described = artifact_metadata(metadata, recipe, None, size, classes, str(model_path), qat=True)
        return finalize_artifact(convert(model, recipe), recipe, described)[0]

    start = build_qat_model(float_model, family=family_of(metadata))
    images, _ = load_calibration_images(data, size, 64, seed=QAT_SEEDS[0])
    seed_quantization_ranges(start, float_model, images)
    artifacts = {"tfyolo one2one qat start (seeded ranges, no fine-tune) int8_int8io": artifact(start)}
    for seed in QAT_SEEDS[1:]:
        model = load_any_detector(work / f"qat_one2one_{seed}" / "best.h5")
        artifacts[f"tfyolo one2one qat_int8_int8io (seed {seed})"] = artifact(model)
    contents.update(artifacts)
    runners = {name: TFLiteRunner(model_content=content) for name, content in artifacts.items()}
    if any(runner.postprocess != "topk" for runner in runners.values()):
        raise SystemExit("one-to-one QAT artifacts must be scored with top-k; their metadata says otherwise.")
    scored, _, _ = evaluate_models(runners, dataset, "val")
    return [
        {
            "artifact": name,
            "head": "one2one",
            "map50_95": result["map50_95"],
            "map50": result["map50"],
            "delta_vs_branch_float": 100 * (result["map50_95"] - float_map),
        }
        for name, result in scored.items()
    ]


def head_to_head_yolo26(weights, prefix, work, qat_epochs):
    from benchmarks.bench_import import OnnxRuntimeRunner, auto_artifact
    from benchmarks.bench_qat import qat_finetune
    from tfyolo.benchmark import interleaved_latency
    from tfyolo.console import TqdmProgress
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.data.pipeline import evaluation_batches
    from tfyolo.evaluation.model_evaluation import evaluate_models
    from tfyolo.evaluation.runners import TFLiteRunner
    from tfyolo.importers.ultralytics_import import import_weights
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec
    from tfyolo.models.model_io import save_model_atomic

    data = require_dataset(PENNFUDAN)
    dataset = DetectionDataset.from_data_yaml(data, "val")
    rows, contents, auto, qat = [], {}, {}, {}
    for head in HEADS:
        model_path = work / f"ul_penn_{head}.keras"
        model, metadata = import_weights(weights / "best.pt", head=head)
        save_model_atomic(model, model_path, dict(metadata, data=str(data)))
        auto_path, auto[head] = auto_artifact(model_path, data, work / f"auto_{head}", max_drop=AUTO_MAX_DROP[head])
        qat_model = None
        if head == "one2one" and qat_epochs:
            qat = {"epochs": qat_epochs, "seeds": {}}
            for seed in QAT_SEEDS:
                history, seconds = qat_finetune(model_path, data, work / f"qat_one2one_{seed}", qat_epochs, 8, seed)
                qat["seeds"][seed] = {"seconds": seconds, "history": history}
            qat_model = str(work / f"qat_one2one_{QAT_SEEDS[0]}" / "best.h5")
        spec = JobSpec(
            model=str(model_path),
            recipes=recipes(work),
            calibration=str(data),
            data=str(data),
            name=head,
            qat_model=qat_model,
        )
        job = run_job(spec, work / head, progress=TqdmProgress())
        failed = {row["recipe"]: row["error"] for row in job.rows if row.get("error")}
        if failed:
            raise SystemExit(f"{head}: conversions failed: {failed}")
        float_map = next(row["map50_95"] for row in job.rows if row["recipe"] == "float")
        for row in job.rows:
            name = f"tfyolo {head} {row['recipe']}" if row["recipe"] != "float" else f"tfyolo {head} float (Keras)"
            rows.append({"artifact": name, "head": head, "map50_95": row["map50_95"], "map50": row["map50"]})
            rows[-1]["delta_vs_branch_float"] = 100 * (row["map50_95"] - float_map)
            if row["recipe"] != "float":
                contents[name] = Path(row["path"]).read_bytes()
        auto_runner = TFLiteRunner(auto_path)
        scored, _, _ = evaluate_models({"auto": auto_runner}, dataset, "val")
        name = f"tfyolo {head} --auto --max-drop {AUTO_MAX_DROP[head]} ({auto[head]['recipe']})"
        rows.append({"artifact": name, "head": head, **{k: scored["auto"][k] for k in ("map50_95", "map50")}})
        rows[-1]["delta_vs_branch_float"] = 100 * (rows[-1]["map50_95"] - float_map)
        contents[name] = Path(auto_path).read_bytes()
        if head == "one2one" and qat:
            rows += qat_rows(model_path, work, data, dataset, float_map, qat, contents)
    external = {
        "ultralytics one2one fp32 end2end (LiteRT)": TFLiteRunner(weights / f"{prefix}_fp32_end2end.tflite"),
        "ultralytics one2many fp32 (LiteRT)": TFLiteRunner(weights / f"{prefix}_fp32.tflite"),
        "ultralytics one2many int8 (LiteRT)": TFLiteRunner(weights / f"{prefix}_int8.tflite"),
        "onnx runtime one2one (best.onnx)": OnnxRuntimeRunner(weights / "best.onnx"),
        "onnx runtime one2many (best_one2many.onnx)": OnnxRuntimeRunner(weights / "best_one2many.onnx"),
    }
    scored, _, _ = evaluate_models(external, dataset, "val")
    floats = {
        head: next(r["map50_95"] for r in rows if r["artifact"] == f"tfyolo {head} float (Keras)") for head in HEADS
    }
    for name, result in scored.items():
        head = "one2one" if "one2one" in name else "one2many"
        rows.append({"artifact": name, "head": head, "map50_95": result["map50_95"], "map50": result["map50"]})
        rows[-1]["delta_vs_branch_float"] = 100 * (result["map50_95"] - floats[head])
        if name.startswith("ultralytics"):
            contents[name] = Path(external[name].description).read_bytes()
    latency = interleaved_latency(contents, num_threads=2, rounds=20)
    for row in rows:
        row["latency_ms_p50"] = latency["models"].get(row["artifact"], {}).get("latency_ms_p50")

    # Post-processing on the same images: each branch's fp32 artifact's decoded outputs, in input pixels.
    decoded = {}
    for head in HEADS:
        runner = TFLiteRunner(model_content=contents[f"tfyolo {head} fp32"])
        images = []
        for _, batch, _ in evaluation_batches(dataset, runner.input_size, 8):
            boxes, scores = runner.predict(batch)
            images += [
                (image_boxes * runner.input_size, image_scores) for image_boxes, image_scores in zip(boxes, scores)
            ]
        decoded[f"{head} ({runner.postprocess})"] = (runner.postprocess, images)
    post = postprocess_latency(decoded)
    report(rows, latency, post, auto, qat)


def report(rows, latency, post, auto, qat):
    by_name = {row["artifact"]: row for row in rows}
    ul_int8 = by_name["ultralytics one2many int8 (LiteRT)"]

    def row(head, recipe):
        return by_name[f"tfyolo {head} {recipe}"]

    # The goals are read on the built-in integer-only recipe, what `tfyolo convert --recipe int8_int8io` makes.
    best_o2o, best_o2m = row("one2one", "int8_int8io"), row("one2many", "int8_int8io")
    qat_names = ["tfyolo one2one qat_int8_int8io"]
    qat_names += [f"tfyolo one2one qat_int8_int8io (seed {seed})" for seed in QAT_SEEDS[1:]]
    qat_deltas = [by_name[name]["delta_vs_branch_float"] for name in qat_names] if qat else []
    goals = [
        (
            f"one2one int8 (integer-only, top-k) within {GOALS['one2one_within']} pt of its float",
            f"{best_o2o['artifact']}: {best_o2o['delta_vs_branch_float']:+.2f} pt; tfyolo int8_tflite: "
            f"{row('one2one', 'int8_tflite')['delta_vs_branch_float']:+.2f} pt",
        ),
        (
            f"one2many int8 within {GOALS['one2many_within']} pt of its float",
            f"{best_o2m['artifact']}: {best_o2m['delta_vs_branch_float']:+.2f} pt; tfyolo int8_tflite: "
            f"{row('one2many', 'int8_tflite')['delta_vs_branch_float']:+.2f} pt",
        ),
        (
            "one2many int8 at or above Ultralytics' int8 (same branch, same weights)",
            f"{best_o2m['artifact']}: {100 * (best_o2m['map50_95'] - ul_int8['map50_95']):+.2f} pt",
        ),
        (
            "one2one QAT int8 at or above its float",
            "worst of seeds "
            + ", ".join(map(str, qat["seeds"]))
            + f": {min(qat_deltas):+.2f} pt (each: "
            + ", ".join(f"{delta:+.2f}" for delta in qat_deltas)
            + f"; {qat['epochs']} epochs)"
            if qat
            else "not measured (--qat-epochs 0)",
        ),
    ]
    columns = [
        ("artifact", "artifact", None),
        ("map50_95", "mAP50-95", "{:.4f}"),
        ("map50", "mAP50", "{:.4f}"),
        ("delta_vs_branch_float", "vs its branch's float (pt)", "{:+.2f}"),
        ("latency_ms_p50", "model p50 ms (2 thr)", "{:.2f}"),
    ]
    post_rows = [{"selection": name, "ms": ms} for name, ms in post.items()]
    markdown = "\n".join(
        [
            "# The same Ultralytics yolo26n (PennFudan, 320 px): its exports vs `tfyolo import` + convert, both heads",
            "",
            markdown_table(rows, columns),
            "",
            "Post-processing per image on the 51 val images' decoded fp32 outputs (median of 15 interleaved rounds):",
            "",
            markdown_table(post_rows, [("selection", "branch (selection) @ confidence", None), ("ms", "ms", "{:.3f}")]),
            "",
            markdown_table(
                [{"goal": goal, "measured": value} for goal, value in goals],
                [("goal", "goal", None), ("measured", "measured", None)],
            ),
            "",
            f"All scored by tfyolo-eval on PennFudan val (51 images): the one-to-one rows with top-k (no NMS), the "
            f"one-to-many rows with NMS. Model latency: one interleaved run, load average "
            f"{latency['load_average'][0]:.2f} -> {latency['load_average'][1]:.2f}. tfyolo int8 calibrated on the "
            "train split (as Ultralytics' int8 was). --auto chose: "
            + "; ".join(f"{head} {chosen['recipe']}" for head, chosen in auto.items())
            + "."
            + (
                f" QAT: {qat['epochs']} epochs of the one-to-one head's loss from the imported one-to-one model, "
                f"ranges seeded by the default PTQ rule, per seed "
                + ", ".join(f"{seed}: {run['seconds']:.0f} s" for seed, run in qat["seeds"].items())
                + "; best.h5 is the best by the fake-quant model's val mAP of the seeded start (epoch 0) and "
                "the epochs, int8 from its learned ranges (the unlabelled qat rows are seed 0's)."
                if qat
                else ""
            ),
        ]
    )
    results = {"machine": machine(), "family": "yolo26", "rows": rows, "goals": dict(goals), "latency": latency}
    results.update(postprocess_ms=post, auto_chosen=auto, qat=qat)
    write_results("import_pennfudan_yolo26", results, markdown)
    print(markdown)
