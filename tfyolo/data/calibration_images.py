"""Representative (calibration) images: the training letterbox, drawn from training data, never the eval split.
Which images a conversion uses when none were named is `tfyolo.quantization.calibration.default_calibration_source`."""

import hashlib
import os
from pathlib import Path

import numpy as np

from tfyolo.data.detection_dataset import IMAGE_EXTENSIONS, DetectionDataset
from tfyolo.data.images import letterbox, read_image_rgb, to_model_input
from tfyolo.errors import DataError

# Calibration holds its images at once, float32: images x 3 x side^2 x 4 bytes. The default 100 images fit up to a
# side of 1888 (4.3 GB), 873 images at 640 (4.3 GB); 100 images at 8192 would be 80 GB.
MAX_CALIBRATION_BYTES = 4 << 30


def calibration_bytes(count, side):
    return count * 3 * side * side * 4


def check_calibration_budget(count, side, where):
    """Raises a one-line DataError naming `where` unless `count` images of `side` px fit MAX_CALIBRATION_BYTES."""
    if calibration_bytes(count, side) > MAX_CALIBRATION_BYTES:
        fits = MAX_CALIBRATION_BYTES // calibration_bytes(1, side)
        raise DataError(
            f"{where}: {count} calibration images of {side} px take {calibration_bytes(count, side) / 1e9:.1f} GB "
            f"as float32 (images x 3 x side^2 x 4 bytes), more than the {MAX_CALIBRATION_BYTES / 1e9:.1f} GB "
            f"calibration holds; use at most {fits} images at this size, or a smaller size."
        )


def calibration_paths(source):
    """Image paths of a calibration source: a folder of images, or a data.yaml (its *train* split)."""
    source = Path(source)
    if source.is_dir():
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not paths:
            raise DataError(f"{source}: no images ({sorted(IMAGE_EXTENSIONS)}) to calibrate with.")
        return paths, f"folder {source}"
    if source.suffix in (".yaml", ".yml"):
        dataset = DetectionDataset.from_data_yaml(source, "train")
        return [sample.image_path for sample in dataset.samples], f"{source} [train]"
    raise DataError(f"{source}: calibration source must be an image folder or a data.yaml.")


def source_name(source):
    """A calibration source described as `calibration_paths` does, without where it is: a folder by its name
    ('folder images'), a data.yaml by its folder's name and its own ('penn/data.yaml [train]'). An artifact carries
    this one; the job's report, which stays on the machine, the full description."""
    located = Path(os.path.abspath(source))
    if located.suffix in (".yaml", ".yml"):
        return f"{located.parent.name}/{located.name} [train]"
    return f"folder {located.name}"


def _file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def overlapping_images(candidates, evaluation_images):
    """The `candidates` whose bytes equal an evaluation image's: a copy or a link is the same image.

    Only files of equal size are hashed, so a large evaluation split costs a stat per file."""
    sizes = {}
    for path in evaluation_images:
        sizes.setdefault(Path(path).stat().st_size, []).append(path)
    candidate_sizes = {path: Path(path).stat().st_size for path in candidates}
    evaluated = {_file_sha256(p) for size in set(candidate_sizes.values()) & sizes.keys() for p in sizes[size]}
    return [path for path, size in candidate_sizes.items() if size in sizes and _file_sha256(path) in evaluated]


def load_calibration_images(source, input_size, count, seed=0, evaluation_images=(), force=False):
    """Returns (float32 (N, S, S, 3) inputs, summary dict).

    Draws `count` images (all if fewer) with `seed`. Refuses images whose content equals an evaluated image's
    unless `force`: a model calibrated on its test images reports a flattering mAP.
    """
    paths, description = calibration_paths(source)
    check_calibration_budget(min(count, len(paths)), input_size, description)
    overlap = overlapping_images(paths, evaluation_images)
    if overlap and not force:
        raise DataError(
            f"{description}: {len(overlap)} calibration image(s) have the same content as evaluation images "
            f"(e.g. {overlap[0]}). Calibrate on training images, or pass --force-calibration-overlap to accept it."
        )
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(paths), size=min(count, len(paths)), replace=False).tolist())
    images, digest = [], hashlib.sha256()
    for index in chosen:
        boxed, _ = letterbox(read_image_rgb(paths[index]), input_size)
        images.append(boxed)
        digest.update(Path(paths[index]).name.encode())
    summary = {
        "source": description,
        "source_name": source_name(source),
        "images_available": len(paths),
        "images_used": len(chosen),
        "seed": seed,
        "names_sha256": digest.hexdigest(),
        "overlap_with_evaluation": len(overlap),
    }
    return to_model_input(np.stack(images)), summary


def refuse_training_overlap(data_yaml, evaluation_images, force=False, who="training", split="train"):
    """The `split` images of `data_yaml` that a model learns from (QAT, a compression fine-tune, the search's QAT
    candidate), checked as calibration images are: refused when one has the content of an evaluated image, unless
    `force`. A data.yaml whose train and val are the same folder (coco128's own, and many users') would otherwise
    fine-tune on the very images it is then scored on, and nothing would say so. Returns the overlapping paths."""
    paths = [sample.image_path for sample in DetectionDataset.from_data_yaml(data_yaml, split).samples]
    overlap = overlapping_images(paths, evaluation_images)
    if overlap and not force:
        raise DataError(
            f"{data_yaml}: {len(overlap)} of the {split} images {who} learns from have the same content as evaluated "
            f"images (e.g. {overlap[0]}); a model fine-tuned on its test images reports a flattering mAP. Give data "
            "whose train and val splits differ, or pass --force-training-overlap to accept it."
        )
    return overlap


def evaluation_image_paths(data_yaml, split="val"):
    """Image paths of `split` of `data_yaml`, the images no calibration set may contain; [] for no data."""
    if not data_yaml:
        return []
    return [sample.image_path for sample in DetectionDataset.from_data_yaml(data_yaml, split).samples]
