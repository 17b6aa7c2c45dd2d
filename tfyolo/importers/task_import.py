"""How one task's Ultralytics files map onto tfyolo's task, as data: the model class a checkpoint pickles, the head
module kind that ends each family's layout, and which children of that module each head and training alone own."""

import dataclasses
from typing import Mapping, Tuple


@dataclasses.dataclass(frozen=True)
class TaskImport:
    """The import of one task.

    Args:
        task: str. The tfyolo task it builds (`tfyolo.models.tasks.TASKS`), also the `task` an ONNX export's metadata
            names.
        model_class: str. The class name of the model a checkpoint pickles ("DetectionModel", ...).
        head_kind: str. The module kind that ends the layout ("Detect", "Segment").
        family_head_kinds: {family: head module kind} where a family has its own ("yolo26": "Segment26").
        head_modules: {head: the head module's children that are that head's branches, box and class first}.
        training_only: tuple of str. Children of the head module that only the training form (head "both")
            imports (YOLO26-seg's semantic branch); any other import leaves them out and says so.
    """

    task: str
    model_class: str
    head_kind: str
    head_modules: Mapping[str, Tuple[str, ...]]
    family_head_kinds: Mapping[str, str] = dataclasses.field(default_factory=dict)
    training_only: Tuple[str, ...] = ()

    def head_kind_of(self, family):
        return self.family_head_kinds.get(family, self.head_kind)
