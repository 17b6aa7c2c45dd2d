"""Every output a model predicts with, as data: the Keras layers that hold its values (each level's prediction
layer and the concatenation over the levels) and the ends of its range that calibration keeps at the extremes it
saw. One table, read by both range rules: ai-edge-quantizer's (`tfyolo.quantization.aeq.choose_ranges`) and QAT's
seeding (`tfyolo.qat.qat_model.activation_range`).

Inside the network the moving average of the per-image ranges clips rare outliers and buys resolution. On the box
and class outputs a clipped value is a wrong answer: a box bin or distance cut short, a class logit above the
calibrated top read as that top (the most confident detections tie). A segmenter's mask outputs are the other way:
a mask is the sign of a sum of 32 coefficient x prototype products, so a few clipped extremes move it less than a
coarser step on every value. Measured on the imported YOLO11n-seg (pennfudan_seg val, calibration seeds 0 and 2,
the float model's 486 detections above 0.25): the masks of the int8 file agree with the float ones inside the
box at IoU 0.9815 / 0.9811 with the average on both mask outputs, 0.9767 / 0.9803 with the coefficients' extremes
(their mean error 0.017 -> 0.045 / 0.027) and 0.9749 / 0.9788 with both outputs' extremes. The coefficients of the
stride-32 level reach -22 / +18 at anchors that never score (every anchor scoring above 0.01 stays within -1.4 /
+1.3); a range measured over the scoring anchors alone gave the average's coefficient error and no better mask.
"""

import dataclasses
from typing import Tuple

from tfyolo.models.detect_head import BOX_OUTPUT, CLASS_OUTPUT, ONE2ONE_OUTPUTS, OUTPUT_LAYERS
from tfyolo.models.model_task import ONE2ONE_PREFIX
from tfyolo.models.segment_head import PROTO
from tfyolo.models.tasks import MASK_COEFFICIENTS, MASK_PROTOTYPES


@dataclasses.dataclass(frozen=True)
class PredictionOutput:
    """layers: fnmatch patterns of the layers holding the output's values; extreme_ends: "min" / "max", the ends
    of its range taken from the extremes seen in calibration; required: every model has it (detection's two)."""

    layers: Tuple[str, ...]
    extreme_ends: Tuple[str, ...]
    required: bool = False


PREDICTION_OUTPUTS = {
    # Every DFL bin or distance is an answer, at both ends.
    BOX_OUTPUT: PredictionOutput((*OUTPUT_LAYERS[BOX_OUTPUT], ONE2ONE_OUTPUTS[BOX_OUTPUT]), ("min", "max"), True),
    # The bottom of the class logits holds only sure negatives, where the average's tighter floor costs nothing.
    CLASS_OUTPUT: PredictionOutput((*OUTPUT_LAYERS[CLASS_OUTPUT], ONE2ONE_OUTPUTS[CLASS_OUTPUT]), ("max",), True),
    # The mask outputs keep the average at both ends (the module docstring's measurement): named here so that a rule
    # that needs them (a recipe, a study) finds them as it finds the boxes.
    MASK_COEFFICIENTS: PredictionOutput(
        ("head*_mask_pred", MASK_COEFFICIENTS, f"{ONE2ONE_PREFIX}{MASK_COEFFICIENTS}"), ()
    ),
    MASK_PROTOTYPES: PredictionOutput((f"{PROTO}_cv3_*", MASK_PROTOTYPES), ()),
}


def outputs_with_extreme(end):
    """The outputs whose range keeps `end` ("min" or "max") at the extreme seen."""
    return [output for output, entry in PREDICTION_OUTPUTS.items() if end in entry.extreme_ends]
