"""A detection split: image paths with validated labels, from YOLO label files or a COCO instances JSON."""

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np

from tfyolo.data.data_config import load_data_config
from tfyolo.data.images import read_image_rgb, resize_long_side
from tfyolo.errors import DataError
from tfyolo.ops.boxes import convert_format

IMAGE_EXTENSIONS = {".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"}
# Labels a hair outside the image (rounding in converters) are clipped; anything further is an error.
# Bounds on one image's label file: every batch is padded to its largest image's object count, so a label file of 10^6
# lines was accepted and ended training out of memory. The densest public detection sets hold several hundred objects
# per image (SKU-110K); a polygon line of a thousand points is about 20 KB.
MAX_LABELS_PER_IMAGE = 5000
MAX_LABEL_FILE_BYTES = 16 << 20
COORDINATE_TOLERANCE = 0.01


@dataclasses.dataclass(frozen=True)
class Sample:
    """One image and its boxes: `boxes` (N, 4) xyxy normalized to [0, 1], `class_ids` (N,) int.

    polygons: None for a split without polygon labels, else a tuple of N entries, each a (K, 2) float32 array of
    x y normalized to [0, 1] (an instance's outline) or None (an instance labelled by its box only)."""

    image_path: Path
    class_ids: np.ndarray
    boxes: np.ndarray
    crowd: np.ndarray = None
    polygons: tuple = None


@dataclasses.dataclass
class DatasetStats:
    images: int = 0
    boxes: int = 0
    background_images: int = 0
    missing_label_files: int = 0
    dropped_degenerate_boxes: int = 0
    clipped_boxes: int = 0
    polygons: int = 0

    def warnings(self):
        notes = []
        if self.missing_label_files:
            notes.append(f"{self.missing_label_files} image(s) have no label file and are used as background images")
        if self.dropped_degenerate_boxes:
            notes.append(f"{self.dropped_degenerate_boxes} zero-size box(es) dropped")
        if self.clipped_boxes:
            notes.append(f"{self.clipped_boxes} box(es) slightly outside the image clipped to it")
        return notes


def label_path_for(image_path):
    """Ultralytics' rule: the last `images` folder of the path becomes `labels`, the suffix becomes .txt."""
    parts = list(Path(image_path).parts)
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] == "images":
            parts[index] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def list_images(source):
    source = Path(source)
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if source.is_file() and source.suffix == ".txt":
        entries = [line.strip() for line in source.read_text().splitlines() if line.strip()]
        # Made absolute without following symlinks, as Ultralytics does: a split whose images/ links into another
        # dataset's images (pennfudan_seg into pennfudan) keeps its own labels/ beside them.
        return [Path(e) if Path(e).is_absolute() else Path(os.path.abspath(source.parent / e)) for e in entries]
    raise DataError(f"{source}: split source not found; expected an image folder or a .txt list of images.")


def _polygon_box(values, where, line):
    """An Ultralytics segment line's polygon ((K, 2) x y, normalized) and its box: the points' extent, as
    Ultralytics' `segments2boxes` derives a segmentation label's box."""
    if len(values) % 2 or len(values) < 6:
        raise DataError(
            f"{where}: a polygon line is 'class x1 y1 x2 y2 x3 y3 ...' (3 or more x y pairs), found {len(values)} "
            f"coordinates: {line.strip()[:80]!r}."
        )
    polygon = np.asarray(values, np.float64).reshape(-1, 2)
    return polygon, np.concatenate([polygon.min(axis=0), polygon.max(axis=0)])


def parse_label_file(label_path, num_classes, stats):
    """Reads `class cx cy w h` lines and Ultralytics' segment lines `class x1 y1 x2 y2 x3 y3 ...` (normalized
    polygon; its box is its extent); returns (class_ids, xyxy boxes, polygons: one (K, 2) array or None per box)
    or raises naming the file and line."""
    class_ids, boxes, polygons = [], [], []
    size = label_path.stat().st_size
    if size > MAX_LABEL_FILE_BYTES:
        raise DataError(f"{label_path}: {size:,} bytes; a label file may hold at most {MAX_LABEL_FILE_BYTES:,}.")
    try:
        text = label_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{label_path}: not UTF-8 text (byte {error.start}); a label file holds lines 'class cx cy w h'."
        )
    lines = text.splitlines()
    if sum(1 for line in lines if line.strip()) > MAX_LABELS_PER_IMAGE:
        raise DataError(
            f"{label_path}: {len(lines):,} lines; an image may hold at most {MAX_LABELS_PER_IMAGE:,} labelled objects."
        )
    for line_number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{label_path}:{line_number}"
        if len(fields) != 5 and len(fields) < 7:
            raise DataError(
                f"{where}: expected 5 fields 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 x3 y3 ...', found "
                f"{len(fields)}: {line.strip()!r}."
            )
        try:
            class_value = float(fields[0])
            values = [float(field) for field in fields[1:]]
        except ValueError:
            raise DataError(f"{where}: fields must be numbers, received {line.strip()!r}.")
        if not all(math.isfinite(value) for value in [class_value, *values]):
            raise DataError(f"{where}: fields must be finite numbers, received {line.strip()!r}.")
        if class_value != int(class_value) or not 0 <= class_value < num_classes:
            raise DataError(
                f"{where}: class id {fields[0]} is not an integer in 0..{num_classes - 1} "
                f"(the dataset names {num_classes} classes)."
            )
        polygon = None
        if len(fields) == 5:
            box = convert_format(np.asarray(values, np.float64), "cxcywh", "xyxy")
        else:
            polygon, box = _polygon_box(values, where, line)
        negative_size = polygon is None and min(values[2:]) < 0
        if negative_size or box.min() < -COORDINATE_TOLERANCE or box.max() > 1 + COORDINATE_TOLERANCE:
            shown = f"box {values} (cx cy w h)" if polygon is None else f"polygon with extent {box.round(4).tolist()}"
            raise DataError(
                f"{where}: {shown} reaches outside [0, 1] beyond {COORDINATE_TOLERANCE}; "
                "labels must be normalized by the image width and height."
            )
        if box.min() < -1e-6 or box.max() > 1 + 1e-6:
            stats.clipped_boxes += 1
        box = box.clip(0, 1)
        if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
            stats.dropped_degenerate_boxes += 1
            continue
        class_ids.append(int(class_value))
        boxes.append(box)
        polygons.append(None if polygon is None else polygon.clip(0, 1).astype(np.float32))
    return np.asarray(class_ids, np.int32), np.asarray(boxes, np.float32).reshape(-1, 4), polygons


class DetectionDataset:
    """The samples of one split, validated up front, with an in-memory cache of resized images.

    Args:
        samples: list of Sample.
        names: tuple of str. Class names.
        description: str. Where the split came from, for messages and metadata.
    """

    def __init__(self, samples, names, description, stats=None):
        if not samples:
            raise DataError(f"{description}: the split holds no images.")
        self.samples = list(samples)
        self.names = tuple(names)
        self.description = description
        self.stats = stats or DatasetStats(images=len(samples), boxes=sum(len(s.class_ids) for s in samples))
        self._cache = {}

    def __len__(self):
        return len(self.samples)

    @property
    def num_classes(self):
        return len(self.names)

    @property
    def has_polygons(self):
        """Whether the split's labels hold instance outlines (Ultralytics' segment lines)."""
        return any(sample.polygons is not None for sample in self.samples)

    @property
    def max_boxes_per_image(self):
        return max(len(sample.class_ids) for sample in self.samples)

    def load_resized(self, index, size, cache=True):
        """Image `index` resized so its long side is `size`, with its original (height, width).

        cache: keep it in memory for the next call (training and its per-epoch validation read every image
        again); a single pass over a large split (evaluation, calibration) should not."""
        key = (index, size)
        if key in self._cache:
            return self._cache[key]
        image = read_image_rgb(self.samples[index].image_path)
        resized, _ = resize_long_side(image, size)
        if cache:
            self._cache[key] = (resized, image.shape[:2])
        return resized, image.shape[:2]

    @classmethod
    def from_yolo_sources(cls, sources, names, description):
        stats = DatasetStats()
        samples = []
        for source in sources:
            for image_path in list_images(source):
                if not image_path.is_file():
                    raise DataError(f"{source}: lists {image_path}, which does not exist.")
                label_path = label_path_for(image_path)
                if label_path.is_file():
                    class_ids, boxes, polygons = parse_label_file(label_path, len(names), stats)
                else:
                    stats.missing_label_files += 1
                    class_ids, boxes, polygons = np.zeros((0,), np.int32), np.zeros((0, 4), np.float32), []
                stats.background_images += int(len(class_ids) == 0)
                stats.boxes += len(class_ids)
                stats.polygons += sum(polygon is not None for polygon in polygons)
                samples.append(Sample(image_path, class_ids, boxes, polygons=tuple(polygons)))
        stats.images = len(samples)
        if not stats.polygons:
            # A detection split: its samples say so, and nothing downstream carries empty polygon lists.
            samples = [dataclasses.replace(sample, polygons=None) for sample in samples]
        if not samples:
            raise DataError(f"{description}: no images found in {[str(s) for s in sources]}.")
        if stats.missing_label_files == len(samples):
            raise DataError(
                f"{description}: none of its {len(samples)} images has a label file (looked for "
                f"{label_path_for(samples[0].image_path)}). YOLO labels live in a 'labels' folder beside 'images' "
                "(images/x.jpg -> labels/x.txt); images without objects may have no file, but not all of them."
            )
        return cls(samples, names, description, stats)

    @classmethod
    def from_data_yaml(cls, yaml_path, split):
        config = load_data_config(yaml_path)
        sources = config.split_sources(split)
        return cls.from_yolo_sources(sources, config.names, f"{config.yaml_path} [{split}]")

    @classmethod
    def from_coco_json(cls, json_path, images_dir):
        """Reads a COCO instances JSON; classes are the categories in id order (COCO's 80 match YOLO's ids)."""
        json_path, images_dir = Path(json_path), Path(images_dir)
        if not json_path.is_file():
            raise DataError(f"{json_path}: COCO annotation file not found.")
        try:
            coco = json.loads(json_path.read_text())
            categories = sorted(coco["categories"], key=lambda category: category["id"])
            images = coco["images"]
            annotations = coco.get("annotations", [])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise DataError(f"{json_path}: not a COCO instances file ({error!r}); expected images/categories.")
        class_index = {category["id"]: index for index, category in enumerate(categories)}
        per_image = {image["id"]: [] for image in images}
        for annotation in annotations:
            if annotation["image_id"] not in per_image or annotation["category_id"] not in class_index:
                raise DataError(
                    f"{json_path}: annotation {annotation.get('id')} refers to an unknown image or category."
                )
            per_image[annotation["image_id"]].append(annotation)
        stats, samples = DatasetStats(), []
        for image in sorted(images, key=lambda item: item["file_name"]):
            width, height = float(image["width"]), float(image["height"])
            entries = per_image[image["id"]]
            xywh = np.asarray([entry["bbox"] for entry in entries], np.float64).reshape(-1, 4)
            boxes = convert_format(xywh, "xywh", "xyxy") / [width, height, width, height]
            class_ids = np.asarray([class_index[entry["category_id"]] for entry in entries], np.int32)
            crowd = np.asarray([bool(entry.get("iscrowd", 0)) for entry in entries], bool)
            stats.boxes += len(entries)
            stats.background_images += int(not entries)
            samples.append(
                Sample(images_dir / image["file_name"], class_ids, boxes.clip(0, 1).astype(np.float32), crowd)
            )
        stats.images = len(samples)
        names = tuple(category["name"] for category in categories)
        return cls(samples, names, f"{json_path}", stats)
