"""Instance masks from a segmentation head's outputs, in numpy, after the detections are selected (NMS or top-k),
as the box decode is: the (quantized) graph ends at the mask coefficients and prototypes.

A detection's mask is sigmoid(coefficients . prototypes), a logit map at the prototypes' resolution (input / 4),
sampled bilinearly at the pixel centres of the frame it is wanted in (the model input, or the original image through
the letterbox), cut to the detection's box there and thresholded at 0.5. Ultralytics 8.4's `process_mask(...,
upsample=True)` is the same computation in the input frame (bilinear, align_corners=False, clamped at the borders;
threshold; keep pixel (row, col) iff x1 <= col < x2 and y1 <= row < y2), so in that frame the two agree pixel for
pixel up to float rounding of logits at 0 (docs/evaluation.md).
"""

import numpy as np


def bilinear_matrix(positions, size):
    """(len(positions), size) float32 weights that sample a length-`size` signal linearly at `positions` (in its
    pixel coordinates, pixel i centred at i), clamped to the end pixels outside [0, size - 1] as PyTorch's bilinear
    `interpolate(align_corners=False)` is."""
    position = np.clip(np.asarray(positions, np.float64), 0.0, size - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, size - 1)
    weight = position - low
    matrix = np.zeros((len(position), size), np.float64)
    rows = np.arange(len(position))
    np.add.at(matrix, (rows, low), 1.0 - weight)
    np.add.at(matrix, (rows, high), weight)
    return matrix.astype(np.float32)


def frame_samplers(shape, proto_shape, input_size, scale=1.0, pad=(0.0, 0.0)):
    """(rows (H, h), columns (W, w)) bilinear weights from the prototypes' (h, w) grid to a frame of `shape` (H, W)
    whose pixel (x, y) lies at input pixel (x * scale + pad_x, y * scale + pad_y): the letterbox for the original
    image, scale 1 and no pad for the input itself. Pixel j's centre j + 0.5 maps to prototype coordinate
    ((j + 0.5) * scale + pad) / stride - 0.5, stride = input_size / h."""
    (height, width), (proto_height, proto_width) = shape, proto_shape
    rows = ((np.arange(height) + 0.5) * scale + pad[1]) * proto_height / input_size - 0.5
    columns = ((np.arange(width) + 0.5) * scale + pad[0]) * proto_width / input_size - 0.5
    return bilinear_matrix(rows, proto_height), bilinear_matrix(columns, proto_width)


# A box edge this close to a whole pixel is on it: a box mapped through the letterbox and back lands a rounding
# error off the pixel it was drawn on, which would otherwise move its crop by a whole row or column.
EDGE_TOLERANCE = 1e-6


def box_span(low, high, size):
    """The pixel indices i with low <= i < high, inside 0..size - 1, as a (start, stop) pair (Ultralytics' crop)."""
    start = int(min(max(np.ceil(low - EDGE_TOLERANCE), 0), size))
    return start, int(min(max(np.ceil(high - EDGE_TOLERANCE), start), size))


def assemble_masks(prototypes, coefficients, boxes, shape, input_size, scale=1.0, pad=(0.0, 0.0)):
    """Binary masks (N, H, W) bool of N detections of one image, in a frame of `shape` (H, W).

    Args:
        prototypes: (h, w, num_masks) float, the image's `mask_prototypes` (NHWC, at input / 4).
        coefficients: (N, num_masks) float, each kept detection's `mask_coefficients`.
        boxes: (N, 4) xyxy in the frame's pixels: a mask is cut to its box.
        shape: (H, W) of the frame. input_size: int, the square model input's side.
        scale, pad: the frame's pixel (x, y) is at input pixel (x * scale + pad[0], y * scale + pad[1]).
    """
    prototypes = np.asarray(prototypes, np.float32)
    proto_height, proto_width, num_masks = prototypes.shape
    masks = np.zeros((len(coefficients), *shape), bool)
    if not len(coefficients):
        return masks
    rows, columns = frame_samplers(shape, (proto_height, proto_width), input_size, scale, pad)
    logits = (np.asarray(coefficients, np.float32) @ prototypes.reshape(-1, num_masks).T).reshape(
        -1, proto_height, proto_width
    )
    for mask, logit, box in zip(masks, logits, np.asarray(boxes, np.float64)):
        top, bottom = box_span(box[1], box[3], shape[0])
        left, right = box_span(box[0], box[2], shape[1])
        if bottom > top and right > left:
            # Only the box's pixels are sampled: the mask is zero outside it. sigmoid(m) > 0.5 is m > 0, tested
            # on the logit so that no exp can overflow.
            mask[top:bottom, left:right] = (rows[top:bottom] @ logit @ columns[left:right].T) > 0
    return masks
