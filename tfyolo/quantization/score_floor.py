"""The class logits' int8 range, chosen for what the scores mean: its floor raised to the lowest score kept.

Min-max calibration gives the class logits a range that runs down to the most confident negative it saw. On the
COCO YOLOv8n (80 classes x 8,400 anchors, nearly all of them sure negatives) that is about -55: TFLiteConverter's
shared scale for the concatenated logits is then 0.23 logit per step, 0.057 of score per step around 0.5, so
detections of different quality tie and AP loses its ordering. No consumer reads a score below the NMS confidence
threshold (Ultralytics' val uses 0.001, deployments far more), so every step spent below it is wasted: with the floor
at logit(min_score) the same 256 steps cover only the scores anyone keeps. A logit under the floor reads as the
floor, a score of min_score, which a threshold at or above min_score drops exactly as it drops the true score.

The floor is applied between calibration and quantization, on the calibrated range of every tensor from the
class-prediction convolutions to the class output (the reshapes and the concatenation over the levels carry the
same values), for both quantizers: TFLiteConverter's calibrate-only pass, then its MLIR quantizer, and
ai-edge-quantizer's calibration result.
"""

import math

import numpy as np

from tfyolo.models.detect_head import CLASS_OUTPUT
from tfyolo.quantization.head_tensors import prediction_tensors


def logit(probability):
    return math.log(probability / (1.0 - probability))


def class_logit_tensors(model):
    """Indices of the tensors that hold class logits in a flatbuffer object-API `model`."""
    return prediction_tensors(model, CLASS_OUTPUT)


def _floored(minimum, maximum, floor):
    """The new (minimum, maximum), shapes kept: the minimum raised to the floor where the calibrated range reaches
    below it; a range wholly below the floor (a level that saw only sure negatives) becomes the floor itself, so
    its logits read as the floor too (both quantizers then widen a range to hold zero)."""
    minimum, maximum = np.asarray(minimum), np.asarray(maximum)
    raised = np.maximum(minimum, floor).astype(minimum.dtype)
    return raised, np.maximum(maximum, raised).astype(maximum.dtype)


def floor_calibrated_model(calibrated_content, min_score):
    """TFLiteConverter's calibrate-only model (float, each tensor's min/max in its quantization parameters) with
    the class logits' minimum raised to logit(`min_score`)."""
    from tensorflow.lite.tools import flatbuffer_utils

    floor = logit(min_score)
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(calibrated_content))
    tensors = model.subgraphs[0].tensors
    for index in class_logit_tensors(model):
        quantization = tensors[index].quantization
        if quantization is not None and quantization.min is not None and quantization.max is not None:
            quantization.min, quantization.max = _floored(quantization.min, quantization.max, floor)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def floor_calibration_result(calibration, class_tensor_names, min_score):
    """ai-edge-quantizer's calibration result ({tensor name: {"min", "max"}}) with the minimum of the class-logit
    tensors named in `class_tensor_names` (`head_tensors.prediction_tensor_names`) raised to logit(`min_score`)."""
    floor = logit(min_score)
    for name in class_tensor_names & calibration.keys():
        entry = calibration[name]
        entry["min"], entry["max"] = _floored(entry["min"], entry["max"], floor)
    return calibration
