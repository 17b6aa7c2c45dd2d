"""What a model task is, as data: the outputs its head adds to detection's two. Each task is one of these
(`tfyolo.models.tasks`), as each family is a `ModelFamily`; the Keras layers that make a task's outputs are built by
`tfyolo.models.task_heads`, so nothing else branches on the task's name."""

import dataclasses
from typing import Tuple

# How the one-to-one head's copy of an output is named in a model holding both of YOLO26's heads (detection's
# `one2one_box_distribution` / `one2one_class_logits` follow the same rule).
ONE2ONE_PREFIX = "one2one_"


def head_output_name(output, head, heads):
    """The name of `head`'s copy of a per-head output (`ModelTask.head_outputs`) in a model ending in `heads`: the
    one-to-one head's is prefixed where the model holds both heads, and plain where it is the only one."""
    return f"{ONE2ONE_PREFIX}{output}" if head == "one2one" and len(heads) > 1 else output


@dataclasses.dataclass(frozen=True)
class ModelTask:
    """A task: what a model predicts beyond a box and class scores per anchor.

    Args:
        name: str. The task's name in configs, metadata and Ultralytics' files ("detect", "segment").
        noun: str. The task in a sentence ("a detection model").
        head_outputs: tuple of str. Outputs each head adds, per anchor (segmentation: the mask coefficients); a
            model with both of YOLO26's heads names the one-to-one head's copy `one2one_<output>`.
        shared_outputs: tuple of str. Outputs made once from the features and shared by every head (segmentation:
            the mask prototypes).
        training_outputs: tuple of str. Outputs only the training form (head "both") of a family that has them
            holds: a branch the loss uses and inference drops (YOLO26-seg's semantic logits).
        num_masks: int. Mask coefficients per anchor, which is also the prototype count (Ultralytics' `nm`).
        proto_channels: int. Width of the prototype branch before the scale's width applies (Ultralytics' `npr`).
        description: str. One line for help texts.
        coco_iou_types: tuple of str. The pycocotools iouTypes its predictions are scored with, boxes first
            ("bbox"; segmentation adds "segm"): the evaluator scores each (`tfyolo.evaluation.task_scoring`).
        mask_ratio: int. Training learns from ground-truth masks at 1 / mask_ratio of the input side, the
            prototypes' resolution (segmentation: 4); 0: no masks.
    """

    name: str
    noun: str
    head_outputs: Tuple[str, ...] = ()
    shared_outputs: Tuple[str, ...] = ()
    training_outputs: Tuple[str, ...] = ()
    num_masks: int = 0
    proto_channels: int = 0
    description: str = ""
    coco_iou_types: Tuple[str, ...] = ("bbox",)
    mask_ratio: int = 0

    @property
    def inference_outputs(self):
        """The outputs this task adds to a one-head (inference) model: what a runner hands the evaluator."""
        return self.head_outputs + self.shared_outputs

    def output_names(self, heads, training_form=False):
        """The outputs this task adds to a model ending in `heads` (its one-to-many head first where it has both):
        each head's outputs (the one-to-one head's prefixed where there are two), the shared ones, and in the
        training form the training-only ones."""
        per_head = [head_output_name(output, head, heads) for head in heads for output in self.head_outputs]
        return tuple(per_head) + self.shared_outputs + (self.training_outputs if training_form else ())
