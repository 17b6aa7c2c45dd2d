"""Anchor points of an anchor-free head: one per feature-map cell, at the cell center."""

import numpy as np


def anchor_points(input_size, strides, offset=0.5):
    """Returns (points, anchor_strides) for a square input.

    points: (anchors, 2) float32 cell centers (x, y) in *grid units of their own level*;
    anchor_strides: (anchors, 1) float32, the stride of each anchor's level.
    Order: level by level (stride 8 first), row-major within a level, the order the model's Reshape produces.
    """
    points, anchor_strides = [], []
    for stride in strides:
        cells = input_size // stride
        grid = np.arange(cells, dtype=np.float32) + offset
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()], axis=-1))
        anchor_strides.append(np.full((cells * cells, 1), stride, np.float32))
    return np.concatenate(points), np.concatenate(anchor_strides)
