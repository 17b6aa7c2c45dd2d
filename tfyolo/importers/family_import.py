"""How one Ultralytics family's files map onto tfyolo's builder, as data: the layout (module index -> module kind
-> tfyolo block) and what tells its scales apart."""

import dataclasses
from typing import Mapping, Optional, Tuple

from tfyolo.models.families import model_family

WEIGHTLESS = ("Upsample", "Concat")


@dataclasses.dataclass(frozen=True)
class FamilyImport:
    """The import of one family.

    Args:
        family: str. The tfyolo family it builds.
        layout: {module index: (Ultralytics module kind, tfyolo block name or None for modules without weights)}.
        marker: str. A tensor only this family's files hold (how an ONNX export, which keeps no module types, is
            recognized).
        first_block_repeats: int. Repeats of module 2 in the yaml, before the scale's depth applies.
        c3k_scales: tuple of str. Scales whose C3k2 blocks are all C3k ones (parse_model forces it).
        absent: tuple of str. Tensors this family's files never hold: another family's marker where the module
            lists agree (YOLO11 and YOLO26 have the same module kinds at the same indices).
    """

    family: str
    layout: Mapping[int, Tuple[str, Optional[str]]]
    marker: str
    first_block_repeats: int
    c3k_scales: Tuple[str, ...] = ()
    absent: Tuple[str, ...] = ()

    @property
    def detect_index(self):
        """The head module's index: the last of every layout (a Detect, or the task's head that extends it)."""
        return max(self.layout)

    def with_head(self, kind):
        """This import for files whose head module is `kind` (a task's: "Segment", "Segment26"); the layout's
        other rows, and what tells the family and its scales apart, are the task's too."""
        index = self.detect_index
        return dataclasses.replace(self, layout={**self.layout, index: (kind, self.layout[index][1])})

    def matches(self, source):
        """True when `source` is this family's: its module kinds (a checkpoint) or its layer indices (an export, which
        keeps no module types), its marker tensor, and none of the tensors it never holds."""
        if any(source.has(name) for name in self.absent) or not source.has(self.marker):
            return False
        if source.modules is not None:
            return [source.modules.get(index) for index in sorted(self.layout)] == [
                kind for _, (kind, _) in sorted(self.layout.items())
            ] and len(source.modules) == len(self.layout)
        return source.module_indices[-1] == self.detect_index

    def scale_of(self, source):
        """The family's scales whose stem width, first-block repeats and C3k use fit the file's tensors."""
        stem = source.tensor_shape("model.0.conv.weight")[0]
        repeats = len({name.split(".")[3] for name in source.state if name.startswith("model.2.m.")})
        uses_c3k = source.has("model.2.m.0.cv3.conv.weight")
        return [
            name
            for name, scale in model_family(self.family).scales.items()
            if scale.channels(64) == stem
            and scale.repeats(self.first_block_repeats) == repeats
            and (name in self.c3k_scales) == uses_c3k
        ]
