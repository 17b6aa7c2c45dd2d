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


def bilinear_taps(positions, size):
    """(low, high, weight): sampling a length-`size` signal linearly at `positions` (in its pixel coordinates, pixel
    i centred at i) is `signal[low] * (1 - weight) + signal[high] * weight`, clamped to the end pixels outside
    [0, size - 1] as PyTorch's bilinear `interpolate(align_corners=False)` is."""
    position = np.clip(np.asarray(positions, np.float64), 0.0, size - 1)
    low = np.floor(position).astype(np.int64)
    return low, np.minimum(low + 1, size - 1), (position - low).astype(np.float32)


def bilinear_matrix(positions, size):
    """The same sampling as a (len(positions), size) float32 matrix."""
    low, high, weight = bilinear_taps(positions, size)
    matrix = np.zeros((len(low), size), np.float32)
    rows = np.arange(len(low))
    np.add.at(matrix, (rows, low), 1.0 - weight)
    np.add.at(matrix, (rows, high), weight)
    return matrix


def frame_positions(length, proto_length, input_size, scale=1.0, pad=0.0):
    """Prototype coordinates of a frame's `length` pixel centres along one axis, the frame's pixel x lying at input
    pixel x * scale + pad (the letterbox for the original image, scale 1 and no pad for the input itself): pixel j's
    centre j + 0.5 maps to ((j + 0.5) * scale + pad) / stride - 0.5, stride = input_size / proto_length."""
    return ((np.arange(length) + 0.5) * scale + pad) * proto_length / input_size - 0.5


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
    low, high, weight = bilinear_taps(frame_positions(shape[0], proto_height, input_size, scale, pad[1]), proto_height)
    columns = bilinear_matrix(frame_positions(shape[1], proto_width, input_size, scale, pad[0]), proto_width)
    logits = (np.asarray(coefficients, np.float32) @ prototypes.reshape(-1, num_masks).T).reshape(
        -1, proto_height, proto_width
    )
    for mask, logit, box in zip(masks, logits, np.asarray(boxes, np.float64)):
        top, bottom = box_span(box[1], box[3], shape[0])
        left, right = box_span(box[0], box[2], shape[1])
        if bottom > top and right > left:
            # Only the box's pixels are sampled: the mask is zero outside it. Columns by a matrix product at the
            # prototypes' height, then rows by their two taps: the dense row product cost 6x more. sigmoid(m) > 0.5
            # is m > 0, tested on the logit so that no exp can overflow.
            across = logit @ columns[left:right].T
            rows = slice(top, bottom)
            sampled = across[low[rows]] * (1.0 - weight[rows, None]) + across[high[rows]] * weight[rows, None]
            mask[top:bottom, left:right] = sampled > 0
    return masks
