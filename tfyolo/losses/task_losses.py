"""Each task's training loss, by task name: the one place the trainer learns which loss a model takes."""

from tfyolo.losses.detection_loss import DetectionLoss
from tfyolo.losses.segmentation_loss import SegmentationLoss

TASK_LOSSES = {"detect": DetectionLoss, "segment": SegmentationLoss}


def task_loss(config, input_size, epochs):
    """The loss of a model built from `config` (ModelConfig): its task's, with the interface of DetectionLoss (a
    task with masks, `mask_ratio`, takes the batch's ground-truth masks after detection's arguments)."""
    return TASK_LOSSES[config.task](config, input_size, epochs)
