"""What a job is: a typed, frozen record, validated once when built. The CLI, the Makefile, the benchmarks and the
service all describe their work with it."""

import dataclasses
import math
from pathlib import Path
from typing import Optional

from tfyolo.config import check_plain_name, input_size_problem, strict_fields
from tfyolo.errors import ConfigError
from tfyolo.quantization.auto import PREFERENCES

KINDS = {
    # kind: (model suffixes it takes, what it does); a .pt or .onnx is imported first (`imgsz`, `head`)
    "convert": (
        (".keras", ".h5", ".pt", ".onnx"),
        "import an Ultralytics file if given one, convert with recipes (or search with auto_max_drop), evaluate, "
        "time, bundle",
    ),
    "evaluate": ((".tflite",), "evaluate a TFLite detector on the data"),
    "bench": ((".tflite",), "time a TFLite model with the LiteRT interpreter"),
    "bundle": ((".tflite",), "write the edge handoff bundle of a TFLite detector"),
}


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """One unit of work.

    Args:
        model: str. The model file: `.keras`/`.h5` (or an Ultralytics `.pt`/`.onnx`, imported first, the import
            cached in the job's folder) for "convert", `.tflite` for the other kinds.
        imgsz: int or None. An imported model's input size; None: the one its file was trained at.
        head: str or None. An imported YOLO26's head ("one2one", "one2many"); None: the family's default.
        kind: str. One of `KINDS`.
        recipes: tuple of str. Built-in recipe names or recipe .yaml paths ("convert"; empty: every built-in).
        auto_max_drop: float or None. "convert" searches the fastest recipe whose mAP50-95 drop stays within this
            many points, instead of running `recipes`.
        prefer: str. The auto search's stopping rule, one of `PREFERENCES`.
        auto_qat_epochs: int. Epochs of quantization-aware distillation for the auto search's QAT candidate; 0: none.
        target: str or None. An Ethos-U NPU (`tfyolo.targets.npu_target.ACCELERATORS`): the auto search keeps what
            the NPU runs and chooses by Vela's estimate for it, at Vela's default system config and memory mode.
        calibration: str or None. Image folder or data.yaml (its train split); None: the model's own default.
        data: str or None. Evaluation data.yaml; None: the one the model's metadata names.
        split: str. The evaluation split.
        evaluate: bool. False converts and checks only ("convert").
        threads: int. Interpreter threads for evaluation and timing.
        max_drop: float or None. The gate: the job's verdict fails when an artifact loses more mAP50-95 points.
        name: str or None. Artifact prefix; None: the model's name.
        qat_model: str or None. A QAT model of the same detector, converted with the int8 recipes too.
        force_calibration_overlap: bool. Allow calibrating on evaluated images (never by default).
        force_training_overlap: bool. Allow fine-tuning (the search's QAT candidate, cluster_int8 / prune_int8) on
            images whose content equals an evaluated image's (never by default).
        bundle: bool. Also write the edge bundle of the job's best artifact.
    """

    model: str
    kind: str = "convert"
    imgsz: Optional[int] = None
    head: Optional[str] = None
    recipes: tuple = ()
    auto_max_drop: Optional[float] = None
    prefer: str = "int8"
    auto_qat_epochs: int = 3
    target: Optional[str] = None
    calibration: Optional[str] = None
    data: Optional[str] = None
    split: str = "val"
    evaluate: bool = True
    threads: int = 2
    max_drop: Optional[float] = None
    name: Optional[str] = None
    qat_model: Optional[str] = None
    force_calibration_overlap: bool = False
    force_training_overlap: bool = False
    bundle: bool = False

    def __post_init__(self):
        if self.name is not None:
            check_plain_name(self.name, "name")
        if self.kind not in KINDS:
            raise ConfigError(f"job kind: expected one of {sorted(KINDS)}, received {self.kind!r}.")
        suffixes = KINDS[self.kind][0]
        if Path(self.model).suffix.lower() not in suffixes:
            raise ConfigError(
                f"model: a {self.kind} job takes a {' / '.join(suffixes)} file, received {Path(self.model).name!r}."
            )
        self._check_import_options()
        if not isinstance(self.recipes, tuple) or not all(isinstance(r, str) and r for r in self.recipes):
            raise ConfigError(f"recipes: expected a tuple of recipe names, received {self.recipes!r}.")
        for field in ("auto_max_drop", "max_drop"):
            value = getattr(self, field)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            ):
                raise ConfigError(f"{field}: expected a number of mAP50-95 points, received {value!r}.")
            if value is not None and value < 0:
                raise ConfigError(f"{field}: a drop of at least 0 points, received {value!r} (a gain is not a drop).")
        if self.auto_max_drop is not None and self.recipes:
            raise ConfigError("recipes and auto_max_drop: give one or the other; auto chooses the recipe itself.")
        if self.auto_max_drop is not None and not self.evaluate:
            raise ConfigError("auto_max_drop needs evaluate=True: the search measures every candidate's mAP.")
        if self.prefer not in PREFERENCES:
            raise ConfigError(f"prefer: expected one of {list(PREFERENCES)}, received {self.prefer!r}.")
        if (
            isinstance(self.auto_qat_epochs, bool)
            or not isinstance(self.auto_qat_epochs, int)
            or not (0 <= self.auto_qat_epochs <= 1000)
        ):
            raise ConfigError(
                f"auto_qat_epochs: expected an integer from 0 to 1000, received {self.auto_qat_epochs!r}."
            )
        if self.target is not None:
            from tfyolo.targets.npu_target import ACCELERATORS

            if self.target not in ACCELERATORS:
                raise ConfigError(f"target: expected one of {list(ACCELERATORS)}, received {self.target!r}.")
            if self.auto_max_drop is None:
                raise ConfigError("target: chooses among the auto search's candidates; it needs auto_max_drop.")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or not 1 <= self.threads <= 64:
            raise ConfigError(f"threads: expected an integer from 1 to 64, received {self.threads!r}.")
        if self.kind != "convert" and (self.recipes or self.auto_max_drop is not None or self.qat_model):
            raise ConfigError(f"recipes, auto_max_drop and qat_model belong to convert jobs, not {self.kind}.")

    def _check_import_options(self):
        if self.imgsz is None and self.head is None:
            return
        if Path(self.model).suffix.lower() not in (".pt", ".onnx"):
            raise ConfigError(
                f"imgsz and head: apply to an imported Ultralytics .pt or .onnx, not {Path(self.model).name!r}."
            )
        problem = None if self.imgsz is None else input_size_problem(self.imgsz)
        if problem:
            raise ConfigError(f"imgsz: expected {problem}.")
        if self.head is not None and self.head not in ("one2one", "one2many"):
            raise ConfigError(f"head: expected one2one or one2many, received {self.head!r}.")

    @classmethod
    def from_dict(cls, values, source="job"):
        """From plain data (JSON, a form); unknown keys are errors and lists become tuples."""
        values = strict_fields(cls, values, source)
        if isinstance(values.get("recipes"), list):
            values["recipes"] = tuple(values["recipes"])
        if "model" not in values:
            raise ConfigError(f"{source}: 'model' is required.")
        return cls(**values)

    def to_dict(self):
        return dataclasses.asdict(self) | {"recipes": list(self.recipes)}

    @property
    def is_auto(self):
        return self.auto_max_drop is not None
