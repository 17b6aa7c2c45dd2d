"""The tasks tfyolo imports from Ultralytics files, by name (`TaskImport` per task)."""

from tfyolo.importers.task_import import TaskImport

DETECT_IMPORT = TaskImport(
    task="detect",
    model_class="DetectionModel",
    head_kind="Detect",
    head_modules={"one2many": ("cv2", "cv3"), "one2one": ("one2one_cv2", "one2one_cv3")},
)
# Segment extends Detect with `cv4` (one per head: Ultralytics deep-copies it for the one-to-one head) and one
# `proto` the heads share; YOLO26's Segment26 holds a Proto26 whose `semseg` only its training loss reads.
SEGMENT_IMPORT = TaskImport(
    task="segment",
    model_class="SegmentationModel",
    head_kind="Segment",
    family_head_kinds={"yolo26": "Segment26"},
    head_modules={"one2many": ("cv2", "cv3", "cv4"), "one2one": ("one2one_cv2", "one2one_cv3", "one2one_cv4")},
    training_only=("proto.semseg",),
)
TASK_IMPORTS = {plan.task: plan for plan in (DETECT_IMPORT, SEGMENT_IMPORT)}
