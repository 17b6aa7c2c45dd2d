"""Training augmentation in numpy/OpenCV, as YOLOv8: mosaic, random affine, HSV jitter, horizontal flip.

Boxes travel as (N, 4) xyxy in pixels of the image they belong to, with their (N,) class ids, and, for training
a segmentation model, their outlines (a list of N (K, 2) polygons in the same pixels, `tfyolo.data.polygons`), or
None when outlines are not asked for.
"""

import dataclasses

import cv2
import numpy as np

from tfyolo.config import strict_fields
from tfyolo.data.images import PAD_VALUE, letterbox
from tfyolo.data.polygons import flip_polygons, polygon_boxes, polygons_in_pixels, transform_polygons


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """YOLOv8's default hyper-parameters (hyp.scratch / default.yaml)."""

    mosaic: float = 1.0
    translate: float = 0.1
    scale: float = 0.5
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    fliplr: float = 0.5

    @classmethod
    def from_dict(cls, values, source="augment config"):
        return cls(**strict_fields(cls, values, source))


NO_AUGMENTATION = AugmentConfig(mosaic=0.0, translate=0.0, scale=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, fliplr=0.0)


def sample_in_pixels(dataset, index, size, with_polygons=False):
    """Image `index` resized to long side `size`, its boxes, class ids and (with_polygons) outlines in its pixels."""
    image, _ = dataset.load_resized(index, size)
    sample = dataset.samples[index]
    height, width = image.shape[:2]
    polygons = polygons_in_pixels(sample, width, height) if with_polygons else None
    return image, sample.boxes * np.array([width, height, width, height], np.float32), sample.class_ids, polygons


def mosaic(dataset, indices, size, rng, with_polygons=False):
    """Four images around a random center on a 2*size canvas (the affine step then crops it back to size)."""
    canvas = np.full((2 * size, 2 * size, 3), PAD_VALUE, np.uint8)
    center_x, center_y = (int(rng.uniform(size / 2, 3 * size / 2)) for _ in range(2))
    all_boxes, all_classes, all_polygons = [], [], []
    for position, index in enumerate(indices):
        image, boxes, class_ids, polygons = sample_in_pixels(dataset, index, size, with_polygons)
        height, width = image.shape[:2]
        # Corner of the canvas each image fills, anchored at the mosaic center.
        if position == 0:
            x1, y1, x2, y2 = max(center_x - width, 0), max(center_y - height, 0), center_x, center_y
            crop_x1, crop_y1 = width - (x2 - x1), height - (y2 - y1)
        elif position == 1:
            x1, y1, x2, y2 = center_x, max(center_y - height, 0), min(center_x + width, 2 * size), center_y
            crop_x1, crop_y1 = 0, height - (y2 - y1)
        elif position == 2:
            x1, y1, x2, y2 = max(center_x - width, 0), center_y, center_x, min(2 * size, center_y + height)
            crop_x1, crop_y1 = width - (x2 - x1), 0
        else:
            x1, y1, x2, y2 = center_x, center_y, min(center_x + width, 2 * size), min(2 * size, center_y + height)
            crop_x1, crop_y1 = 0, 0
        canvas[y1:y2, x1:x2] = image[crop_y1 : crop_y1 + (y2 - y1), crop_x1 : crop_x1 + (x2 - x1)]
        shift = np.array([x1 - crop_x1, y1 - crop_y1] * 2, np.float32)
        all_boxes.append(boxes + shift)
        all_classes.append(class_ids)
        if with_polygons:
            all_polygons.extend(points + shift[:2] for points in polygons)
    boxes = np.concatenate(all_boxes).reshape(-1, 4).clip(0, 2 * size)
    return canvas, boxes, np.concatenate(all_classes), all_polygons if with_polygons else None


def keep_valid_boxes(before, after, min_size=2.0, min_area_ratio=0.1, max_aspect=100.0):
    """YOLOv8's box_candidates: drop boxes that became tiny, mostly cut away, or needle-thin."""
    width_before, height_before = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    width, height = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    aspect = np.maximum(width / (height + 1e-16), height / (width + 1e-16))
    return (
        (width > min_size)
        & (height > min_size)
        & (width * height / (width_before * height_before + 1e-16) > min_area_ratio)
        & (aspect < max_aspect)
    )


def random_affine(image, boxes, class_ids, output_size, rng, translate, scale, polygons=None):
    """Random zoom about the image center and translation, producing an `output_size` square. With `polygons`,
    each box becomes its moved outline's visible extent (Ultralytics' boxes of segments), and they are kept alike."""
    height, width = image.shape[:2]
    to_origin = np.array([[1, 0, -width / 2], [0, 1, -height / 2], [0, 0, 1]], np.float64)
    zoom = rng.uniform(1 - scale, 1 + scale)
    scaling = np.diag([zoom, zoom, 1.0])
    shift = np.eye(3)
    shift[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * output_size
    shift[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * output_size
    matrix = shift @ scaling @ to_origin
    warped = cv2.warpAffine(
        image, matrix[:2], (output_size, output_size), borderValue=(PAD_VALUE,) * 3, flags=cv2.INTER_LINEAR
    )
    if len(boxes):
        corners = np.stack([boxes[:, [0, 1]], boxes[:, [2, 1]], boxes[:, [0, 3]], boxes[:, [2, 3]]], axis=1).reshape(
            -1, 2
        )
        moved = (np.c_[corners, np.ones(len(corners))] @ matrix[:2].T).reshape(-1, 4, 2)
        new_boxes = np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1).clip(0, output_size)
        if polygons is not None:
            polygons = transform_polygons(polygons, matrix)
            new_boxes = polygon_boxes(polygons, output_size, output_size)
        keep = keep_valid_boxes(boxes * zoom, new_boxes)
        boxes, class_ids = new_boxes[keep].astype(np.float32), class_ids[keep]
        if polygons is not None:
            polygons = [points for points, kept in zip(polygons, keep) if kept]
    return warped, boxes, class_ids, polygons


def augment_hsv(image, rng, hue_gain, saturation_gain, value_gain):
    if not (hue_gain or saturation_gain or value_gain):
        return image
    gains = rng.uniform(-1, 1, 3) * [hue_gain, saturation_gain, value_gain] + 1
    hue, saturation, value = cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
    levels = np.arange(256, dtype=np.float64)
    lookup_hue = ((levels * gains[0]) % 180).astype(np.uint8)
    lookup_saturation = np.clip(levels * gains[1], 0, 255).astype(np.uint8)
    lookup_value = np.clip(levels * gains[2], 0, 255).astype(np.uint8)
    merged = cv2.merge((cv2.LUT(hue, lookup_hue), cv2.LUT(saturation, lookup_saturation), cv2.LUT(value, lookup_value)))
    return cv2.cvtColor(merged, cv2.COLOR_HSV2RGB)


def training_sample(dataset, index, size, rng, config, use_mosaic):
    """One augmented (image uint8 size x size x 3, boxes xyxy pixels, class ids) training example."""
    image, boxes, class_ids, _ = training_sample_with_polygons(dataset, index, size, rng, config, use_mosaic, False)
    return image, boxes, class_ids


def training_sample_with_polygons(dataset, index, size, rng, config, use_mosaic, with_polygons=True):
    """training_sample and (with_polygons) each kept box's outline, moved alike; the random draws are the same."""
    if use_mosaic and rng.random() < config.mosaic:
        others = rng.integers(0, len(dataset), size=3)
        image, boxes, class_ids, polygons = mosaic(dataset, [index, *others], size, rng, with_polygons)
    else:
        image, boxes, class_ids, polygons = sample_in_pixels(dataset, index, size, with_polygons)
        image, info = letterbox(image, size)
        boxes = boxes * info.scale + np.array([info.pad_x, info.pad_y] * 2, np.float32)
        if with_polygons:
            polygons = [points * info.scale + np.array([info.pad_x, info.pad_y], np.float32) for points in polygons]
    image, boxes, class_ids, polygons = random_affine(
        image, boxes, class_ids, size, rng, config.translate, config.scale, polygons
    )
    image = augment_hsv(image, rng, config.hsv_h, config.hsv_s, config.hsv_v)
    if rng.random() < config.fliplr:
        image = np.ascontiguousarray(image[:, ::-1])
        boxes = np.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0], boxes[:, 3]], axis=-1).reshape(-1, 4)
        if with_polygons:
            polygons = flip_polygons(polygons, size)
    return image, boxes.astype(np.float32), class_ids.astype(np.int32), polygons
