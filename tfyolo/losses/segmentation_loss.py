"""The training loss of an instance segmentation model: detection's terms and the mask term (Ultralytics'
v8SegmentationLoss), the mask term learning from the positives the detection loss assigned.

A YOLO26-seg (both heads, Ultralytics' E2ELoss over SegmentLoss26) adds three things: each head's mask term uses that
head's own coefficients (the one-to-one head's term, like its detection terms, trains that head alone); the
assignment scores each predicted mask (`MaskAwareAssigner`); and the one-to-many term carries the training-only
semantic branch's loss (`SemanticLoss`). ProgLoss weighs the two heads as for detection.
"""

import functools

from tfyolo.losses.detection_loss import DetectionLoss
from tfyolo.losses.mask_aware_assigner import MaskAwareAssigner
from tfyolo.losses.segment_loss import SegmentLoss
from tfyolo.losses.semantic_loss import SemanticLoss
from tfyolo.losses.task_aligned_assigner import TaskAlignedAssigner
from tfyolo.models.model_family import ALL_HEADS
from tfyolo.models.model_task import head_output_name
from tfyolo.models.tasks import MASK_COEFFICIENTS, MASK_PROTOTYPES, SEMANTIC_LOGITS


class SegmentationLoss:
    """The loss of a segmentation model built from `config` (ModelConfig, task "segment"); the interface of
    `DetectionLoss`, its call taking the batch's ground-truth masks too.

    Args:
        config: ModelConfig.
        input_size: int. Square training input side in pixels.
        epochs: int. The run's epochs.
    """

    def __init__(self, config, input_size, epochs):
        # YOLO26's Segment26 (a family with a one-to-one head) assigns by masks too; YOLOv8 and YOLO11 by boxes.
        mask_aware = "one2one" in config.model_family.heads
        assigner = functools.partial(MaskAwareAssigner, input_size=input_size) if mask_aware else TaskAlignedAssigner
        self.detection = DetectionLoss(config, input_size, epochs, assigner_class=assigner)
        self.mask_aware = mask_aware
        self.masks = SegmentLoss(input_size)
        heads = self.detection.heads
        trains_semantic = SEMANTIC_LOGITS in config.model_task.output_names(heads, config.head == ALL_HEADS)
        self.semantic = SemanticLoss(config.num_classes) if trains_semantic else None
        self.coefficient_outputs = {head: head_output_name(MASK_COEFFICIENTS, head, heads) for head in heads}
        self.part_names = DetectionLoss.part_names + ("mask",) + (("semantic",) if self.semantic else ())

    @property
    def has_head_only_term(self):
        return self.detection.has_head_only_term

    def start_epoch(self, epoch):
        self.detection.start_epoch(epoch)

    def head_loss(self, head, outputs, gt_boxes, gt_classes, gt_mask, gt_masks):
        """(total, parts) of one head: its detection terms and its mask term on the positives it was assigned."""
        coefficients = outputs[self.coefficient_outputs[head]]
        prototypes = outputs[MASK_PROTOTYPES]
        masks_in = {"coefficients": coefficients, "prototypes": prototypes, "gt_masks": gt_masks}
        box_output, class_output = self.detection.outputs_of(head, outputs)
        loss, parts, (target_boxes, assigned, foreground) = self.detection.losses[head](
            box_output,
            class_output,
            gt_boxes,
            gt_classes,
            gt_mask,
            with_assignment=True,
            assigner_inputs=masks_in if self.mask_aware else None,
        )
        mask_loss = self.masks(coefficients, prototypes, gt_masks, target_boxes, assigned, foreground)
        return loss + mask_loss, {**parts, "mask": mask_loss}

    def __call__(self, outputs, gt_boxes, gt_classes, gt_mask, gt_masks):
        """Returns (loss, head_only, parts) as `DetectionLoss`: parts are detection's {"box", "class", "dfl"},
        "mask", and "semantic" where the model has the semantic branch.

        gt_masks: (B, M, h, w) 0/1 at the prototypes' resolution, in the order of gt_boxes."""
        totals, parts = {}, {}
        for head in self.detection.heads:
            totals[head], parts[head] = self.head_loss(head, outputs, gt_boxes, gt_classes, gt_mask, gt_masks)
        logged = parts["one2one"] if "one2one" in parts else parts[self.detection.heads[0]]
        first = "one2many" if "one2many" in totals else self.detection.heads[0]
        if self.semantic is not None:
            semantic = self.semantic(outputs[SEMANTIC_LOGITS], gt_masks, gt_classes, gt_mask)
            totals[first] = totals[first] + semantic
            logged = {**logged, "semantic": semantic}
        if not self.has_head_only_term:
            return totals[first], None, logged
        weight = self.detection.one2many_weight
        return weight * totals["one2many"], (1.0 - weight) * totals["one2one"], logged
