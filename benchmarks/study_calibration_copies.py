"""The built-in int8 calibrated on bench-coco's 100 coco128 images plus an augmented copy of each, scored on
coco_val150 beside the built-in int8's drop on the 100 images alone (benchmarks/results/coco_val150.json).

A range calibrated on 100 train images may miss what unseen images reach. The copies are the training augmentation
without mosaic (`tfyolo.data.augment`: random zoom 0.5-1.5 and shift, HSV jitter, a flip half of the time): the
variations the model learned to expect, which move objects' sizes, positions and colours as another 100 images
would. Each seed draws the 100 images bench-coco draws; the copies are written to a calibration folder beside them
and the conversion takes all 200, through the job path a user's conversion takes. The folder lists each copy
after its image, so the moving average's last forty or so images, which set its ranges, are twenty scenes and
their copies.

Usage: python -m benchmarks.study_calibration_copies [--families yolo26n] [--seeds 0,1,2]
Results: benchmarks/results/coco_calibration_copies.{json,md}
"""

import shutil
from pathlib import Path

import click
import cv2
import numpy as np

from benchmarks.bench_coco import CALIBRATION, family_model
from benchmarks.common import RESULTS, WORK, load_json, machine, markdown_table, write_results
from benchmarks.study_int8_recipe import variant_row

NAME = "calibration_copies"
IMAGES = 100
SIDE = 640


def calibration_folder(seed):
    """A folder holding the `IMAGES` coco128 images that seed `seed` draws (as `load_calibration_images` draws them)
    and one augmented copy of each, as PNG at the model's side; returns it."""
    from tfyolo.data.augment import AugmentConfig, training_sample
    from tfyolo.data.calibration_images import calibration_paths
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.data.images import letterbox, read_image_rgb

    dataset = DetectionDataset.from_data_yaml(CALIBRATION, "train")
    paths, _ = calibration_paths(CALIBRATION)
    chosen = sorted(np.random.default_rng(seed).choice(len(paths), size=IMAGES, replace=False).tolist())
    folder = WORK / f"coco_{NAME}" / "images" / f"seed{seed}"
    shutil.rmtree(folder, ignore_errors=True)  # a folder left by another draw would be calibrated on too
    folder.mkdir(parents=True)
    augment = np.random.default_rng(1000 + seed)
    for index in chosen:
        stem = Path(paths[index]).stem
        original, _ = letterbox(read_image_rgb(paths[index]), SIDE)
        copy, _, _ = training_sample(dataset, index, SIDE, augment, AugmentConfig(), use_mosaic=False)
        for suffix, image in (("", original), ("_augmented", copy)):
            cv2.imwrite(str(folder / f"{stem}{suffix}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder


@click.command()
@click.option("--families", default="yolov8n,yolo11n,yolo26n", show_default=True)
@click.option("--seeds", default="0,1,2", show_default=True)
def main(families, seeds):
    recorded = load_json(RESULTS / "coco_val150.json")["results"]
    seeds = [int(seed) for seed in seeds.split(",")]
    folders = {seed: calibration_folder(seed) for seed in seeds}
    settings = {"calibration_images": 2 * IMAGES}
    results = []
    for family in families.split(","):
        model, _ = family_model(family)
        rows = {seed: variant_row(family, model, seed, settings, NAME, calibration=folders[seed]) for seed in seeds}
        before = recorded[family]["seeds"]
        results.append(
            {
                "family": family,
                "seeds": {
                    seed: {**row, "int8_delta": before[str(seed)]["int8"]["delta"]} for seed, row in rows.items()
                },
            }
        )
    table = []
    for result in results:
        with_copies = [result["seeds"][seed]["delta"] for seed in seeds]
        alone = [result["seeds"][seed]["int8_delta"] for seed in seeds]
        table.append(
            {
                "family": result["family"],
                "alone": " / ".join(f"{value:+.2f}" for value in alone),
                "alone_mean": float(np.mean(alone)),
                "copies": " / ".join(f"{value:+.2f}" for value in with_copies),
                "copies_mean": float(np.mean(with_copies)),
            }
        )
    seed_text = " / ".join(str(seed) for seed in seeds)
    text = "\n".join(
        [
            "# coco_val150: int8 calibrated with augmented copies of the calibration images",
            "",
            f"The built-in int8, calibrated on bench-coco's {IMAGES} coco128 images per seed and on those images plus "
            "one augmented copy of each (the training augmentation without mosaic: zoom, shift, HSV, flip), scored "
            "on coco_val150; mAP50-95 against float in points.",
            "",
            markdown_table(
                table,
                [
                    ("family", "family", None),
                    ("alone", f"{IMAGES} images, seeds {seed_text}", None),
                    ("alone_mean", "mean", "{:+.2f}"),
                    ("copies", f"{IMAGES} images + {IMAGES} copies, seeds {seed_text}", None),
                    ("copies_mean", "mean", "{:+.2f}"),
                ],
            ),
            "",
            "One drop on these 150 images carries a standard error of 0.5-1.0 point (coco_val150_spread.md). "
            "Command: `python -m benchmarks.study_calibration_copies`.",
        ]
    )
    write_results(f"coco_{NAME}", {"machine": machine(), "settings": settings, "results": results}, text)


if __name__ == "__main__":
    main()
