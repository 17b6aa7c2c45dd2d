"""The training loss of an instance segmentation model: detection's terms and the mask term (Ultralytics'
v8SegmentationLoss), the mask term learning from the positives the detection loss assigned."""

from tfyolo.errors import ConfigError
from tfyolo.losses.detection_loss import DetectionLoss
from tfyolo.losses.segment_loss import SegmentLoss
from tfyolo.models.tasks import MASK_COEFFICIENTS, MASK_PROTOTYPES


class SegmentationLoss:
    """The loss of a segmentation model built from `config` (ModelConfig, task "segment"); the interface of
    `DetectionLoss`, its call taking the batch's ground-truth masks too.

    Args:
        config: ModelConfig.
        input_size: int. Square training input side in pixels.
        epochs: int. The run's epochs.
    """

    part_names = DetectionLoss.part_names + ("mask",)

    def __init__(self, config, input_size, epochs):
        self.detection = DetectionLoss(config, input_size, epochs)
        if len(self.detection.heads) != 1:
            # YOLO26-seg trains with a mask-aware assigner and a semantic term (Ultralytics' SegmentLoss26).
            raise ConfigError(
                f"segmentation training takes a one-head family (yolov8, yolo11); {config.family}'s two heads are "
                "not trained with masks yet."
            )
        self.masks = SegmentLoss(input_size)
        self.has_head_only_term = False

    def start_epoch(self, epoch):
        self.detection.start_epoch(epoch)

    def __call__(self, outputs, gt_boxes, gt_classes, gt_mask, gt_masks):
        """Returns (loss, None, parts): parts are detection's {"box", "class", "dfl"} and "mask".

        gt_masks: (B, M, h, w) 0/1 at the prototypes' resolution, in the order of gt_boxes."""
        (head,) = self.detection.heads
        box_output, class_output = self.detection.outputs_of(head, outputs)
        loss, parts, (target_boxes, assigned, foreground) = self.detection.losses[head](
            box_output, class_output, gt_boxes, gt_classes, gt_mask, with_assignment=True
        )
        mask_loss = self.masks(
            outputs[MASK_COEFFICIENTS], outputs[MASK_PROTOTYPES], gt_masks, target_boxes, assigned, foreground
        )
        return loss + mask_loss, None, {**parts, "mask": mask_loss}
