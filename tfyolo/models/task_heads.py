"""The head of any task: detection's outputs (`tfyolo.models.detect_head`), and the outputs the model's task adds
(`tfyolo.models.tasks`), by one table. Family builders call `task_heads`; nothing else branches on the task."""

from tfyolo.models.detect_head import detect_heads
from tfyolo.models.model_family import ALL_HEADS
from tfyolo.models.model_task import head_output_name
from tfyolo.models.segment_head import segment_outputs
from tfyolo.models.tasks import MASK_COEFFICIENTS


def _heads(config):
    """The heads the model ends in, the one-to-many first (the order `detect_heads` builds them in)."""
    if config.head != ALL_HEADS:
        return (config.head,)
    return tuple(sorted(config.model_family.heads, key=lambda head: head != "one2many"))


def _segment(features, config, proto_fusion):
    heads = _heads(config)
    names = {head: head_output_name(MASK_COEFFICIENTS, head, heads) for head in heads}
    return segment_outputs(
        features, config, heads, names, proto_fusion=proto_fusion, training_form=config.head == ALL_HEADS
    )


# task name -> its outputs beyond detection's, as {name: tensor}: (features, config, proto_fusion) -> dict.
TASK_OUTPUTS = {"detect": lambda features, config, proto_fusion: {}, "segment": _segment}


def task_heads(features, config, class_branch, proto_fusion=False):
    """Every output of `config`'s model over `features` (P3, P4, P5): detection's (`detect_heads`), then its task's.

    class_branch: the class branch's blocks (`detect_head.CLASS_BRANCHES`). proto_fusion: the family fuses P3-P5
    before its mask prototypes (YOLO26's Proto26); YOLOv8 and YOLO11 take P3 alone."""
    outputs = detect_heads(features, config, class_branch)
    extra = TASK_OUTPUTS[config.task](features, config, proto_fusion)
    expected = config.model_task.output_names(_heads(config), training_form=config.head == ALL_HEADS)
    # The task's data and its builder must agree: a reader of the metadata relies on the names the task lists.
    if set(extra) != set(expected):
        raise ValueError(f"task {config.task}: its head made {sorted(extra)}, the task names {list(expected)}.")
    return {**outputs, **extra}
