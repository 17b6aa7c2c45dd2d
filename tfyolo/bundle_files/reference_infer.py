#!/usr/bin/env python3
"""Standalone reference inference for a tfyolo edge bundle: numpy + ai-edge-litert + OpenCV, nothing else.

    python reference_infer.py IMAGE [--conf 0.25] [--iou 0.7] [--json]

Runs exactly what the manifest describes: letterbox (gray 114, RGB, /255, NHWC or NCHW) -> quantize input -> model ->
dequantize outputs -> decode (DFL expectation, or plain distances for reg_max 1, + anchors for the tfyolo layout) ->
class-aware NMS, or top-k for a one-to-one head (the manifest's `postprocess`), and prints each detection as class
name, score and box in the original image's pixels. A segmentation model's detections also carry their mask at the
original image size (`decode.masks`): its pixel count in the table, COCO's uncompressed RLE with --json.
"""

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

HERE = Path(__file__).resolve().parent


def letterbox(image, size, pad_value):
    height, width = image.shape[:2]
    scale = min(size / height, size / width)
    new_width, new_height = int(round(width * scale)), int(round(height * scale))
    if (new_width, new_height) != (width, height):
        image = cv2.resize(
            image, (new_width, new_height), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        )
    pad_x, pad_y = (size - new_width) / 2, (size - new_height) / 2
    top, left = int(round(pad_y - 0.1)), int(round(pad_x - 0.1))
    image = cv2.copyMakeBorder(
        image, top, size - new_height - top, left, size - new_width - left, cv2.BORDER_CONSTANT, value=(pad_value,) * 3
    )
    return image, scale, left, top


def input_size(spec):
    """The square input's side: shape (1, H, W, 3) or (1, 3, H, W), so index 2 either way."""
    return spec["shape"][2]


def quantize(values, spec):
    if spec["dtype"] == "float32":
        return values.astype(np.float32)
    info = np.iinfo(spec["dtype"])
    q = np.round(values / spec["scale"] + spec["zero_point"])
    return np.clip(q, info.min, info.max).astype(spec["dtype"])


def dequantize(values, spec):
    if spec["dtype"] == "float32":
        return values.astype(np.float32)
    return (values.astype(np.float32) - spec["zero_point"]) * spec["scale"]


def anchor_points(size, strides):
    points, anchor_strides = [], []
    for stride in strides:
        cells = size // stride
        grid = np.arange(cells, dtype=np.float32) + 0.5
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()], -1))
        anchor_strides.append(np.full((cells * cells, 1), stride, np.float32))
    return np.concatenate(points), np.concatenate(anchor_strides)


def mask_outputs(outputs, manifest):
    """A segmenter's (coefficients (A, num_masks), prototypes (h, w, num_masks)); (None, None) for a detector."""
    masks = manifest["decode"].get("masks")
    if not masks:
        return None, None
    if manifest["decode"]["layout"] == "tfyolo":
        return outputs["mask_coefficients"][0], outputs["mask_prototypes"][0]
    prototypes = outputs["output1"][0]
    num_masks = prototypes.shape[0] if masks["prototype_layout"] == "NCHW" else prototypes.shape[-1]
    if masks["prototype_layout"] == "NCHW":
        prototypes = np.transpose(prototypes, (1, 2, 0))
    return outputs["output0"][0][-num_masks:].T, prototypes


def decode(outputs, manifest):
    """-> boxes (A, 4) xyxy in input pixels, scores (A, classes)."""
    size, decoding = input_size(manifest["input"]), manifest["decode"]
    num_masks = mask_outputs(outputs, manifest)[0].shape[1] if decoding.get("masks") else 0
    if decoding["layout"] == "ultralytics_end2end":
        rows = outputs["output0"][0]
        scores = np.zeros((len(rows), len(manifest["names"])), np.float32)
        classes = np.clip(np.round(rows[:, 5]).astype(np.int64), 0, scores.shape[1] - 1)
        scores[np.arange(len(rows)), classes] = rows[:, 4]
        return rows[:, :4] * (size if decoding.get("box_units") == "normalized" else 1.0), scores
    if decoding["layout"] == "ultralytics":
        rows = outputs["output0"][0].T
        boxes = rows[:, :4] * (size if decoding["box_units"] == "normalized" else 1.0)
        xyxy = np.c_[boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2]
        return xyxy, rows[:, 4 : rows.shape[1] - num_masks]
    reg_max = decoding["reg_max"]
    if reg_max == 1:
        distances = outputs["box_distribution"][0]
    else:
        logits = outputs["box_distribution"][0].reshape(-1, 4, reg_max)
        logits = logits - logits.max(-1, keepdims=True)
        probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        distances = probabilities @ np.arange(reg_max, dtype=np.float32)
    points, strides = anchor_points(size, decoding["strides"])
    boxes = np.c_[points - distances[:, :2], points + distances[:, 2:]] * strides
    scores = 0.5 * (1.0 + np.tanh(0.5 * outputs["class_logits"][0]))
    return boxes, scores


def nms(boxes, scores, conf, iou_threshold, max_detections):
    anchor_index, class_ids = np.nonzero(scores > conf)
    confidences = scores[anchor_index, class_ids]
    candidates = boxes[anchor_index].astype(np.float64)
    offset = class_ids[:, None] * (np.abs(candidates).max(initial=1.0) * 2 + 1)
    shifted = candidates + offset
    areas = np.prod(np.clip(shifted[:, 2:] - shifted[:, :2], 0, None), axis=1)
    order, keep = np.argsort(-confidences, kind="stable"), []
    while order.size and len(keep) < max_detections:
        best, rest = order[0], order[1:]
        keep.append(best)
        top_left = np.maximum(shifted[best, :2], shifted[rest, :2])
        bottom_right = np.minimum(shifted[best, 2:], shifted[rest, 2:])
        inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
        order = rest[inter / np.maximum(areas[best] + areas[rest] - inter, 1e-12) <= iou_threshold]
    keep = np.asarray(keep, dtype=np.int64)
    return candidates[keep], confidences[keep], class_ids[keep], anchor_index[keep]


def top_k(boxes, scores, conf, max_detections):
    """A one-to-one head's selection: the best anchors by their best class score, then the best (anchor, class)
    pairs among them, above the threshold; no NMS."""
    k = min(max_detections, len(scores))
    anchors = np.argsort(-scores.max(-1), kind="stable")[:k]
    pairs = scores[anchors].reshape(-1)
    order = np.argsort(-pairs, kind="stable")[:k]
    order = order[pairs[order] > conf]
    kept = anchors[order // scores.shape[1]]
    return boxes[kept].astype(np.float64), pairs[order], order % scores.shape[1], kept


def bilinear_taps(length, proto_length, size, scale, pad):
    """Prototype rows (or columns) sampled for an original image's `length` pixel centres: pixel j lies at input
    pixel (j + 0.5) * scale + pad, at prototype coordinate that / (input / prototype side) - 0.5, clamped to the
    ends as PyTorch's bilinear interpolate(align_corners=False) is. -> (low, high, weight of high)."""
    position = ((np.arange(length) + 0.5) * scale + pad) * proto_length / size - 0.5
    position = np.clip(position, 0.0, proto_length - 1)
    low = np.floor(position).astype(np.int64)
    return low, np.minimum(low + 1, proto_length - 1), (position - low).astype(np.float32)


def box_span(low, high, length):
    """The pixels i with low <= i < high inside 0 .. length - 1, as (start, stop); edges within 1e-6 of a whole
    pixel are on it (a box mapped through the letterbox and back lands a rounding error off)."""
    start = int(min(max(np.ceil(low - 1e-6), 0), length))
    return start, int(min(max(np.ceil(high - 1e-6), start), length))


def assemble_masks(coefficients, prototypes, boxes, shape, size, scale, pad_x, pad_y):
    """(N, H, W) bool masks of the kept detections at the original image size (see the manifest's
    `decode.masks.assembly`)."""
    proto_height, proto_width, num_masks = prototypes.shape
    rows_low, rows_high, rows_weight = bilinear_taps(shape[0], proto_height, size, scale, pad_y)
    cols_low, cols_high, cols_weight = bilinear_taps(shape[1], proto_width, size, scale, pad_x)
    logits = (coefficients.astype(np.float32) @ prototypes.reshape(-1, num_masks).T.astype(np.float32)).reshape(
        -1, proto_height, proto_width
    )
    masks = np.zeros((len(coefficients), *shape), bool)
    for mask, logit, box in zip(masks, logits, boxes):
        top, bottom = box_span(box[1], box[3], shape[0])
        left, right = box_span(box[0], box[2], shape[1])
        if bottom > top and right > left:
            columns = slice(left, right)
            across = (
                logit[:, cols_low[columns]] * (1.0 - cols_weight[columns])
                + logit[:, cols_high[columns]] * (cols_weight[columns])
            )
            rows = slice(top, bottom)
            sampled = across[rows_low[rows]] * (1.0 - rows_weight[rows, None])
            sampled += across[rows_high[rows]] * rows_weight[rows, None]
            mask[top:bottom, left:right] = sampled > 0
    return masks


def run_length(mask):
    """COCO's uncompressed RLE of a (H, W) bool mask: run lengths in column-major order, starting with zeros."""
    flat = mask.ravel(order="F")
    edges = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    counts = ([0] if flat.size and flat[0] else []) + np.diff(edges).tolist()
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def run(image_path, conf=None, iou=None, bundle=HERE):
    manifest = json.loads((bundle / "manifest.json").read_text())
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"{image_path}: cannot read this image.")
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    spec = manifest["input"]
    size = input_size(spec)
    boxed, scale, pad_x, pad_y = letterbox(rgb, size, spec["pad_value"])
    interpreter = Interpreter(model_path=str(bundle / manifest["model"]), num_threads=2)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    model_input = boxed[None].astype(np.float32) / 255.0
    if spec["layout"] == "NCHW":
        model_input = np.transpose(model_input, (0, 3, 1, 2))
    interpreter.set_tensor(detail["index"], quantize(model_input, spec))
    interpreter.invoke()
    by_name = {d["name"]: d for d in interpreter.get_output_details()}
    outputs = {
        out["name"]: dequantize(interpreter.get_tensor(by_name[out["tensor_name"]]["index"]), out)
        for out in manifest["outputs"]
    }
    boxes, scores = decode(outputs, manifest)
    nms_spec = manifest["nms"]
    threshold = nms_spec["confidence_threshold"] if conf is None else conf
    if manifest.get("postprocess", "nms") == "topk":
        kept_boxes, kept_scores, kept_classes, kept_anchors = top_k(
            boxes, scores, threshold, nms_spec["max_detections"]
        )
    else:
        kept_boxes, kept_scores, kept_classes, kept_anchors = nms(
            boxes, scores, threshold, nms_spec["iou_threshold"] if iou is None else iou, nms_spec["max_detections"]
        )
    height, width = rgb.shape[:2]
    kept_boxes[:, [0, 2]] = ((kept_boxes[:, [0, 2]] - pad_x) / scale).clip(0, width)
    kept_boxes[:, [1, 3]] = ((kept_boxes[:, [1, 3]] - pad_y) / scale).clip(0, height)
    names = manifest["names"]
    detections = [
        {"class": names[int(c)], "class_id": int(c), "score": float(s), "box": [float(v) for v in b]}
        for b, s, c in zip(kept_boxes, kept_scores, kept_classes)
    ]
    coefficients, prototypes = mask_outputs(outputs, manifest)
    if coefficients is not None:
        masks = assemble_masks(
            coefficients[kept_anchors], prototypes, kept_boxes, (height, width), size, scale, pad_x, pad_y
        )
        for detection, mask in zip(detections, masks):
            detection["mask"] = run_length(mask)
            detection["mask_pixels"] = int(mask.sum())
    return detections


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--conf", type=float, default=None, help="confidence threshold [manifest default]")
    parser.add_argument("--iou", type=float, default=None, help="NMS IoU threshold [manifest default]")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    args = parser.parse_args(argv)
    detections = run(args.image, args.conf, args.iou)
    if args.json:
        print(json.dumps(detections))
        return 0
    for det in detections:
        x1, y1, x2, y2 = det["box"]
        mask = f"  mask {det['mask_pixels']} px" if "mask" in det else ""
        print(f"{det['class']:<20} {det['score']:.3f}  [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]{mask}")
    print(f"{len(detections)} detection(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
