"""The tasks tfyolo builds and imports, by name. Data only (no TensorFlow): the layers are made by
`tfyolo.models.task_heads.task_heads`."""

from tfyolo.errors import ConfigError
from tfyolo.models.model_task import ModelTask

# Segmentation's outputs: (batch, anchors, num_masks) linear coefficients in anchor order, (batch, input / 4,
# input / 4, num_masks) prototypes (NHWC, after the branch's last SiLU), and for YOLO26's training form (batch,
# input / 8, input / 8, num_classes) semantic logits.
MASK_COEFFICIENTS = "mask_coefficients"
MASK_PROTOTYPES = "mask_prototypes"
SEMANTIC_LOGITS = "semantic_logits"

DETECT = ModelTask(name="detect", noun="detection", description="boxes and class scores")
SEGMENT = ModelTask(
    name="segment",
    noun="segmentation",
    head_outputs=(MASK_COEFFICIENTS,),
    shared_outputs=(MASK_PROTOTYPES,),
    training_outputs=(SEMANTIC_LOGITS,),
    # Ultralytics' yaml rows `Segment[nc, 32, 256]` / `Segment26[nc, 32, 256]`.
    num_masks=32,
    proto_channels=256,
    description="boxes, class scores and instance masks (coefficients x prototypes)",
    coco_iou_types=("bbox", "segm"),
    # The prototypes are made at stride 4 (P3's stride 8, upsampled twice by the Proto branch).
    mask_ratio=4,
)
TASKS = {task.name: task for task in (DETECT, SEGMENT)}
DEFAULT_TASK = DETECT.name


def model_task(name):
    if name not in TASKS:
        raise ConfigError(f"task must be one of {sorted(TASKS)}, received {name!r}.")
    return TASKS[name]


def task_of_outputs(output_names):
    """The task whose inference outputs `output_names` (a model's, a converted file's signature) hold, the one adding
    the most where several fit (every task's outputs include detection's, which adds none)."""
    names = set(output_names)
    fitting = [task for task in TASKS.values() if set(task.inference_outputs) <= names]
    return max(fitting, key=lambda task: len(task.inference_outputs))
