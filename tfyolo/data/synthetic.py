"""A deterministic synthetic detection set: shapes of several classes and sizes on textured backgrounds.

It is the project's embedded default (training, calibration, tests) on a fresh machine; it needs no download.
Every image comes from its own generator seeded with (seed, index), so any subset regenerates identically.
Objects may overlap; each label is the tight box of the object's *visible* pixels, and objects less than
`MIN_VISIBLE` visible are dropped from the labels, as annotators do.
"""

import math
from pathlib import Path

import cv2
import numpy as np
import yaml

from tfyolo.errors import ConfigError

MIN_VISIBLE = 0.4


def _regular_polygon(sides, radius, angle, inner_ratio=None):
    count = sides * (2 if inner_ratio else 1)
    points = []
    for index in range(count):
        theta = angle + 2 * math.pi * index / count
        r = radius * (inner_ratio if inner_ratio and index % 2 else 1.0)
        points.append((r * math.cos(theta), r * math.sin(theta)))
    return np.asarray(points)


def _draw_polygon(mask, center, points):
    cv2.fillPoly(mask, [np.round(points + center).astype(np.int32)], 255, lineType=cv2.LINE_8)


# Each class is a shape family drawn in its own hue band (see `_class_color`); size, rotation, position,
# saturation and brightness vary freely.
SHAPES = {
    "circle": lambda mask, c, r, a: cv2.circle(mask, tuple(int(v) for v in c), int(r), 255, -1),
    "square": lambda mask, c, r, a: _draw_polygon(mask, c, _regular_polygon(4, r * 1.2, a)),
    "triangle": lambda mask, c, r, a: _draw_polygon(mask, c, _regular_polygon(3, r * 1.2, a)),
    "star": lambda mask, c, r, a: _draw_polygon(mask, c, _regular_polygon(5, r * 1.2, a, inner_ratio=0.45)),
    "ring": lambda mask, c, r, a: cv2.circle(mask, tuple(int(v) for v in c), int(r * 0.8), 255, max(2, int(r * 0.35))),
    "cross": lambda mask, c, r, a: _draw_polygon(mask, c, _regular_polygon(4, r * 1.2, a, inner_ratio=0.35)),
    "hexagon": lambda mask, c, r, a: _draw_polygon(mask, c, _regular_polygon(6, r, a)),
    "ellipse": lambda mask, c, r, a: cv2.ellipse(
        mask, tuple(int(v) for v in c), (int(r), max(2, int(r * 0.45))), math.degrees(a), 0, 360, 255, -1
    ),
}


def _class_color(rng, class_id, num_classes):
    """An RGB color in class `class_id`'s hue band: classes differ by shape *and* by hue, as real object classes
    tend to share a palette. Background clutter takes every hue, so color alone does not find objects."""
    hue = (class_id * 180.0 / num_classes + rng.uniform(-12, 12)) % 180
    hsv = np.array([[[hue, rng.uniform(140, 255), rng.uniform(120, 255)]]], np.float32).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _background(rng, size):
    """Low-frequency color field + noise + clutter lines/blobs, so objects are not found by flat color alone."""
    coarse = rng.integers(30, 226, size=(4, 4, 3)).astype(np.uint8)
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    image += rng.normal(0, 12, size=(size, size, 3))
    for _ in range(int(rng.integers(3, 9))):
        color = rng.integers(0, 256, size=3).tolist()
        start = tuple(int(v) for v in rng.integers(0, size, 2))
        end = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.line(image, start, end, color, int(rng.integers(1, 4)))
    for _ in range(int(rng.integers(0, 4))):
        color = rng.integers(0, 256, size=3).tolist()
        center = tuple(int(v) for v in rng.integers(0, size, 2))
        axes = tuple(int(v) for v in rng.integers(size // 30 + 1, size // 10 + 2, 2))
        cv2.ellipse(image, center, axes, float(rng.uniform(0, 180)), 0, 360, color, -1)
    return np.clip(image, 0, 255).astype(np.uint8)


def synthetic_sample(seed, index, size, num_classes, max_objects=6):
    """Returns (RGB uint8 image, class ids (N,), boxes (N, 4) xyxy normalized) of image `index`."""
    rng = np.random.default_rng([seed, index])
    shape_names = list(SHAPES)[:num_classes]
    image = _background(rng, size)
    owner = np.full((size, size), -1, np.int32)
    masks, classes = [], []
    for object_index in range(int(rng.integers(1, max_objects + 1))):
        class_id = int(rng.integers(0, num_classes))
        radius = float(rng.uniform(0.07, 0.22) * size)
        center = rng.uniform(radius * 0.6, size - radius * 0.6, size=2)
        mask = np.zeros((size, size), np.uint8)
        SHAPES[shape_names[class_id]](mask, center, radius, float(rng.uniform(0, 2 * math.pi)))
        if mask.sum() == 0:
            continue
        color = _class_color(rng, class_id, num_classes)
        shade = np.linspace(0.75, 1.15, size, dtype=np.float32)[:, None, None]  # a lit-from-above gradient
        filled = np.clip(color[None, None] * shade, 0, 255)
        region = mask > 0
        image[region] = filled.repeat(size, axis=1)[region].astype(np.uint8)
        owner[region] = object_index
        masks.append((object_index, int(region.sum())))
        classes.append(class_id)
    class_ids, boxes = [], []
    for (object_index, area), class_id in zip(masks, classes):
        ys, xs = np.nonzero(owner == object_index)
        if len(xs) < MIN_VISIBLE * area:
            continue
        class_ids.append(class_id)
        boxes.append([xs.min() / size, ys.min() / size, (xs.max() + 1) / size, (ys.max() + 1) / size])
    image = cv2.GaussianBlur(image, (3, 3), 0.6)
    return image, np.asarray(class_ids, np.int32), np.asarray(boxes, np.float32).reshape(-1, 4)


def write_synthetic_dataset(out, images=500, num_classes=3, size=320, seed=0, val_fraction=0.2, progress=None):
    """Writes OUT/images/{train,val}, OUT/labels/{train,val} and OUT/data.yaml; returns the data.yaml path."""
    if not 1 <= num_classes <= len(SHAPES):
        raise ConfigError(f"--classes must be 1..{len(SHAPES)} (one shape family each), received {num_classes}.")
    if images < 2:
        raise ConfigError(f"--images must be at least 2 (one train, one val), received {images}.")
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"--val-fraction must be at least 0 and below 1, received {val_fraction}.")
    if size < 32:
        raise ConfigError(f"--imgsz must be at least 32 pixels, received {size}.")
    out = Path(out)
    num_val = max(1, int(round(images * val_fraction)))
    if num_val >= images:
        raise ConfigError(
            f"--val-fraction {val_fraction} of {images} images leaves no training image; lower it or add images."
        )
    for index in range(images):
        split = "val" if index >= images - num_val else "train"
        image, class_ids, boxes = synthetic_sample(seed, index, size, num_classes)
        image_dir, label_dir = out / "images" / split, out / "labels" / split
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        (image_dir / f"synth_{index:05d}.png").write_bytes(encoded.tobytes())
        cxcywh = np.c_[(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]]
        lines = [f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}" for c, (x, y, w, h) in zip(class_ids, cxcywh)]
        (label_dir / f"synth_{index:05d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        if progress:
            progress(1)
    names = list(SHAPES)[:num_classes]
    data = {
        "path": ".",
        "train": "images/train",
        "val": "images/val",
        "nc": num_classes,
        "names": dict(enumerate(names)),
    }
    yaml_path = out / "data.yaml"
    yaml_path.write_text(
        f"# tfyolo synthetic set: {images} images, {size}px, seed {seed} (tfyolo data synth)\n"
        + yaml.safe_dump(data, sort_keys=False)
    )
    return yaml_path


def write_calibration_images(out, images=64, num_classes=3, size=128, seed=1):
    """Unlabeled synthetic images for calibration, plus MANIFEST.txt (name, sha256); returns the names.

    A different seed from the training set's, so these are never the default model's evaluation images.
    """
    import hashlib

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(images):
        image, _, _ = synthetic_sample(seed, index, size, num_classes)
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        name = f"calib_{index:04d}.png"
        (out / name).write_bytes(encoded.tobytes())
        lines.append(f"{name}  {hashlib.sha256(encoded.tobytes()).hexdigest()}")
    header = (
        f"# tfyolo synthetic calibration set: {images} images, {size}px, {num_classes} classes, seed {seed}\n"
        "# regenerate: tfyolo data calib calibration_data\n# name  sha256\n"
    )
    (out / "MANIFEST.txt").write_text(header + "\n".join(lines) + "\n")
    return [line.split()[0] for line in lines]
