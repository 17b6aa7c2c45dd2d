"""Box formats and overlaps in numpy.

Every format is converted through xyxy with lookup tables (as keras-cv's `bounding_box.converters`), so adding a
format is two table rows, not a new branch in every caller.

Formats (last axis of size 4):
    xyxy: corners (x_min, y_min, x_max, y_max).
    cxcywh: center and size, the YOLO label format.
    xywh: top-left corner and size, the COCO JSON format.
"""

import numpy as np

from tfyolo.errors import ConfigError


def _split(boxes):
    boxes = np.asarray(boxes, dtype=np.float64 if np.asarray(boxes).dtype == np.float64 else np.float32)
    return boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]


def _cxcywh_to_xyxy(boxes):
    cx, cy, w, h = _split(boxes)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def _xywh_to_xyxy(boxes):
    x, y, w, h = _split(boxes)
    return np.stack([x, y, x + w, y + h], axis=-1)


def _xyxy_to_cxcywh(boxes):
    x1, y1, x2, y2 = _split(boxes)
    return np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


def _xyxy_to_xywh(boxes):
    x1, y1, x2, y2 = _split(boxes)
    return np.stack([x1, y1, x2 - x1, y2 - y1], axis=-1)


def _identity(boxes):
    return np.array(boxes, dtype=np.float64 if np.asarray(boxes).dtype == np.float64 else np.float32)


TO_XYXY = {"xyxy": _identity, "cxcywh": _cxcywh_to_xyxy, "xywh": _xywh_to_xyxy}
FROM_XYXY = {"xyxy": _identity, "cxcywh": _xyxy_to_cxcywh, "xywh": _xyxy_to_xywh}


def convert_format(boxes, source, target):
    """Converts `boxes` from format `source` to format `target` (see the module docstring)."""
    for name in (source, target):
        if name not in TO_XYXY:
            raise ConfigError(f"Unknown box format {name!r}; expected one of {sorted(TO_XYXY)}.")
    return FROM_XYXY[target](TO_XYXY[source](boxes))


def box_area(boxes):
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)


def pairwise_iou(boxes_a, boxes_b):
    """IoU of every box in `boxes_a` (N, 4) with every box in `boxes_b` (M, 4), both xyxy; returns (N, M)."""
    boxes_a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
    boxes_b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
    top_left = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
    union = box_area(boxes_a)[:, None] + box_area(boxes_b)[None, :] - intersection
    return intersection / np.maximum(union, 1e-12)
