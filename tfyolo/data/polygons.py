"""Instance outlines through augmentation: polygons as lists of (K, 2) float arrays of x y in pixels.

A polygon moves with the same matrix as its image; its box is then the extent of the part inside the image (as
Ultralytics' segment2box), so a rotated or cut object gets a tight box instead of its moved corners' extent.
"""

import cv2
import numpy as np

# fillPoly's fractional bits: polygon points keep 1/256 pixel precision.
SUBPIXEL_BITS = 8


def polygons_in_pixels(sample, width, height):
    """The sample's outlines in pixels of a `width` x `height` image; an object labelled by its box only (or any
    object of a split without polygons) gets its box's four corners, so every object has an outline."""
    scale = np.array([width, height], np.float32)
    polygons = sample.polygons if sample.polygons is not None else (None,) * len(sample.boxes)
    outlines = []
    for box, polygon in zip(sample.boxes, polygons):
        if polygon is None:
            x1, y1, x2, y2 = box
            polygon = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32)
        outlines.append(polygon * scale)
    return outlines


def transform_polygons(polygons, matrix):
    """Each polygon's points through the 2x3 (or 3x3) affine `matrix`."""
    matrix = np.asarray(matrix, np.float64)[:2]
    return [(np.c_[points, np.ones(len(points))] @ matrix.T).astype(np.float32) for points in polygons]


def visible_extremes(points, width, height):
    """The points that bound the part of polygon `points` inside [0, width] x [0, height]: its vertices inside,
    its edges' crossings of the image's sides, and the image's corners inside it (empty when none is visible)."""
    inside = (points[:, 0] >= 0) & (points[:, 0] <= width) & (points[:, 1] >= 0) & (points[:, 1] <= height)
    start, step = points, np.roll(points, -1, axis=0) - points
    crossings = []
    for axis, bound in ((0, 0.0), (0, width), (1, 0.0), (1, height)):
        with np.errstate(divide="ignore", invalid="ignore"):  # an edge along this side crosses it nowhere
            t = (bound - start[:, axis]) / step[:, axis]
            cross = start + t[:, None] * step
        other, limit = cross[:, 1 - axis], (height, width)[axis]
        crossings.append(cross[(t >= 0) & (t <= 1) & (other >= 0) & (other <= limit)])
    contour = points.reshape(-1, 1, 2)
    corners = [
        corner
        for corner in ((0.0, 0.0), (width, 0.0), (0.0, height), (width, height))
        if cv2.pointPolygonTest(contour, corner, False) >= 0
    ]
    return np.concatenate([points[inside], *crossings, np.asarray(corners, np.float32).reshape(-1, 2)])


def polygon_boxes(polygons, width, height):
    """(N, 4) xyxy: each polygon's visible extent in a `width` x `height` image (zeros when none is visible)."""
    boxes = np.zeros((len(polygons), 4), np.float32)
    for i, points in enumerate(polygons):
        if len(points) < 3:
            continue
        visible = visible_extremes(np.asarray(points, np.float32), width, height)
        if len(visible):
            boxes[i] = [*visible.min(axis=0), *visible.max(axis=0)]
    return boxes


def flip_polygons(polygons, width):
    """Polygons mirrored left to right in an image `width` pixels wide."""
    return [np.stack([width - points[:, 0], points[:, 1]], axis=-1) for points in polygons]


def polygon_masks(polygons, size, ratio):
    """(N, size // ratio, size // ratio) uint8 0/1 masks of the polygons (pixels of a `size` square input).

    Each outline is filled at input resolution, then a mask pixel is in when more than half its area is: fillPoly
    also fills the pixels its edges touch, which at prototype resolution would grow every mask by up to a pixel
    (a box 0..8 at ratio 4 fills mask pixels 0 and 1 exactly, as the mask loss crops them).
    """
    side = size // ratio
    masks = np.zeros((len(polygons), side, side), np.uint8)
    # fillPoly paints the canvas' border pixels along an edge that runs outside it: a margin takes those.
    canvas = np.zeros((size + 2 * ratio, size + 2 * ratio), np.uint8)
    for mask, points in zip(masks, polygons):
        if len(points) < 3:
            continue
        canvas[:] = 0
        # Input coordinate x is x - 0.5 in fillPoly's pixel-centre coordinates.
        fixed = np.round((np.asarray(points) + ratio - 0.5) * (1 << SUBPIXEL_BITS)).astype(np.int32)
        cv2.fillPoly(canvas, [fixed], color=1, shift=SUBPIXEL_BITS)
        inner = canvas[ratio:-ratio, ratio:-ratio].astype(np.float32)
        coverage = cv2.resize(inner, (side, side), interpolation=cv2.INTER_AREA)
        mask[:] = coverage > 0.5
    return masks
