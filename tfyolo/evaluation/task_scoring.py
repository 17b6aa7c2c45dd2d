"""The one table from a COCO iouType beyond boxes to what scores it: the evaluator scores a model with every iouType
its task names (`ModelTask.coco_iou_types`) and never branches on the task's name. Pose would add "keypoints"."""

from tfyolo.evaluation.mask_scoring import MaskScoring

BOX_IOU_TYPE = "bbox"
SCORINGS = {scoring.iou_type: scoring for scoring in (MaskScoring(),)}


def task_scorings(task):
    """The scorings (objects with `iou_type`, `report_key`, `ground_truth`, `detections`) a ModelTask adds to the
    box scoring every task has."""
    missing = [iou_type for iou_type in task.coco_iou_types if iou_type not in (BOX_IOU_TYPE, *SCORINGS)]
    if missing:
        raise ValueError(f"task {task.name}: no scoring for its COCO iouTypes {missing}.")
    return [SCORINGS[iou_type] for iou_type in task.coco_iou_types if iou_type != BOX_IOU_TYPE]
