"""Peak memory of `tfyolo-eval --reference` at 640 px with 80 classes, on 64 vs 128 coco128 images.

The comparison with the reference streams (both models run on each batch in lockstep), so memory must not grow
with the number of images; keeping every image's raw outputs, as before, cost 4.8 MB per image.

Usage: python -m benchmarks.bench_eval_memory
"""

import os
import subprocess
import sys
import time

import yaml

from benchmarks.common import SHARED, WORK, machine, markdown_table, require_dataset, write_results

IMGSZ = 640
COUNTS = (64, 128)


def build_models(folder):
    """An untrained n model at 640 with 80 classes, as .keras and fp32 .tflite (what is measured is memory)."""
    from tfyolo.metadata import embed_metadata
    from tfyolo.models.model_config import ModelConfig
    from tfyolo.models.yolo_detector import build_yolo_detector
    from tfyolo.quantization.artifact import artifact_metadata
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.recipe import Recipe

    keras_path, tflite_path = folder / "n80_640.keras", folder / "n80_640_fp32.tflite"
    if keras_path.is_file() and tflite_path.is_file():
        return keras_path, tflite_path
    model = build_yolo_detector(ModelConfig(num_classes=80, input_size=IMGSZ))
    # The prior puts every score near 1e-5; lifting class 0 gives each image a realistic set of candidates.
    for layer in model.layers:
        if layer.name.endswith("cls_pred"):
            kernel, bias = layer.get_weights()
            bias[0] = -5.0
            layer.set_weights([kernel, bias])
    model.save(keras_path)
    recipe = Recipe(name="fp32", mode="fp32")
    metadata = artifact_metadata({"names": [str(i) for i in range(80)]}, recipe, None, IMGSZ, 80, keras_path)
    tflite_path.write_bytes(embed_metadata(convert(model, recipe), metadata))
    return keras_path, tflite_path


def subset_yaml(folder, count):
    root = require_dataset(SHARED / "coco128" / "data.yaml").parent
    names = yaml.safe_load((root / "data.yaml").read_text())["names"]
    images = sorted((root / "images").iterdir())[:count]
    listing = folder / f"coco128_first{count}.txt"
    listing.write_text("".join(f"{path.resolve()}\n" for path in images))
    data = folder / f"coco128_first{count}.yaml"
    data.write_text(yaml.safe_dump({"train": str(listing), "val": str(listing), "names": names}))
    return data


def peak_rss_mb(command):
    """Runs `command`; returns (exit code, peak RSS in MB of that process alone, seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{' '.join(map(str, command))} failed:\n{process.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def main():
    folder = WORK / "eval_memory"
    folder.mkdir(parents=True, exist_ok=True)
    keras_path, tflite_path = build_models(folder)
    evaluate = os.path.join(os.path.dirname(sys.executable), "tfyolo-eval")
    rows = []
    for count in COUNTS:
        data = subset_yaml(folder, count)
        print(f"tfyolo-eval --reference at {IMGSZ} px, 80 classes, {count} images ...", file=sys.stderr)
        peak, seconds = peak_rss_mb([evaluate, tflite_path, "--reference", keras_path, "--data", data])
        rows.append({"images": count, "peak_rss_mb": peak, "seconds": seconds})
        print(f"  peak RSS {peak:.0f} MB in {seconds:.0f} s", file=sys.stderr)
    growth = rows[1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]
    result = {
        "machine": machine(),
        "imgsz": IMGSZ,
        "num_classes": 80,
        "rows": rows,
        "growth_mb": growth,
        "growth_mb_per_image": growth / (COUNTS[1] - COUNTS[0]),
        "raw_outputs_mb_per_image": 8400 * (64 + 80) * 4 / 2**20,
    }
    columns = [("images", "images", None), ("peak_rss_mb", "peak RSS (MB)", "{:.0f}"), ("seconds", "seconds", "{:.0f}")]
    markdown = "\n".join(
        [
            f"# Memory of `tfyolo-eval --reference` at {IMGSZ} px, 80 classes (coco128)",
            "",
            markdown_table(rows, columns),
            "",
            f"Growth from {COUNTS[0]} to {COUNTS[1]} images: {growth:+.0f} MB "
            f"({result['growth_mb_per_image']:+.2f} MB per image); keeping both models' raw outputs would cost "
            f"{2 * result['raw_outputs_mb_per_image']:.1f} MB per image.",
        ]
    )
    for path in write_results("eval_memory_coco128", result, markdown):
        print(f"Wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
