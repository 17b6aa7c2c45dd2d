import dataclasses
from typing import Optional

from tfyolo.config import ACTIVATION_NAMES, strict_fields
from tfyolo.errors import ConfigError
from tfyolo.models.families import FAMILIES
from tfyolo.models.tasks import DEFAULT_TASK, TASKS

OPTIMIZERS = ("auto", "adamw", "sgd")
SCHEDULES = ("cosine", "linear")
PRECISIONS = (None, "mixed_float16", "mixed_bfloat16")
STRATEGIES = (None, "mirrored", "multiworker")
COMPRESSIONS = ("cluster", "prune")
# tfmot's preserving 8-bit schemes: QAT that keeps a pruned model's zeros or a clustered model's shared values.
PRESERVED_IN_QAT = ("prune", "cluster")
# How QAT fine-tunes a trained model: AdamW at a low rate, no warmup, no mosaic (`tfyolo qat`'s defaults, and the
# settings of `convert --auto`'s QAT candidate).
QAT_FINE_TUNE = dict(
    batch=16, optimizer="adamw", lr0=1e-4, warmup_epochs=0.0, mosaic=0.0, close_mosaic=0, qat_calibration_images=64
)
# How `tfyolo compress` (and a cluster_int8 / prune_int8 recipe) fine-tunes a trained model into shared weights or
# zeros: the same low rate, and no EMA (it would average weights that moved between centroids).
COMPRESS_FINE_TUNE = dict(
    batch=16, optimizer="adamw", lr0=1e-4, warmup_epochs=0.0, mosaic=0.0, close_mosaic=0, ema=False
)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved as `train_args.json` and reused verbatim by `--resume`.

    Defaults are YOLOv8's (default.yaml) where they exist. `lr0=None` picks YOLOv8's "auto" learning rate.
    `task`: what the model predicts (`tfyolo.models.tasks.TASKS`); a detection run's saved arguments leave it out,
    as they did before tasks existed, so its train_args.json and its models' metadata are unchanged.
    """

    data: str
    out: str
    family: str = "yolov8"
    scale: str = "n"
    activation: str = "silu"
    imgsz: int = 320
    epochs: int = 100
    batch: int = 16
    optimizer: str = "auto"
    lr0: Optional[float] = None
    lrf: float = 0.01
    momentum: float = 0.937
    weight_decay: float = 0.0005
    warmup_epochs: float = 3.0
    schedule: str = "linear"
    close_mosaic: int = 10
    mosaic: float = 1.0
    translate: float = 0.1
    scale_jitter: float = 0.5
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    fliplr: float = 0.5
    ema: bool = True
    ema_decay: float = 0.9999
    seed: int = 0
    val_batch: int = 16
    val_interval: int = 1
    max_boxes: Optional[int] = None
    mixed_precision: Optional[str] = None
    strategy: Optional[str] = None
    init_weights: Optional[str] = None
    max_grad_norm: float = 10.0
    qat_from: Optional[str] = None
    qat_staged: bool = False
    qat_calibration_images: int = 64
    skip_bad_images: bool = False
    freeze: Optional[str] = None
    compress: Optional[str] = None
    clusters: int = 16
    sparsity: float = 0.5
    qat_preserve: Optional[str] = None
    task: str = DEFAULT_TASK

    def __post_init__(self):
        scales = FAMILIES[self.family].scales if self.family in FAMILIES else {}
        checks = [
            (self.family in FAMILIES, f"family must be one of {sorted(FAMILIES)}, received {self.family!r}"),
            (self.scale in scales, f"scale must be one of {sorted(scales)}, received {self.scale!r}"),
            (
                self.activation in ACTIVATION_NAMES,
                f"activation must be one of {ACTIVATION_NAMES}, received {self.activation!r}",
            ),
            (self.epochs >= 1, f"epochs must be >= 1, received {self.epochs}"),
            (self.batch >= 1, f"batch must be >= 1, received {self.batch}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, received {self.optimizer!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, received {self.schedule!r}"),
            (
                self.mixed_precision in PRECISIONS,
                f"mixed_precision must be one of {PRECISIONS}, received {self.mixed_precision!r}",
            ),
            (self.strategy in STRATEGIES, f"strategy must be one of {STRATEGIES}, received {self.strategy!r}"),
            (self.freeze in (None, "backbone"), f"freeze must be 'backbone' or unset, received {self.freeze!r}"),
            (
                self.imgsz >= 32 and self.imgsz % 32 == 0,
                f"imgsz must be a positive multiple of 32, received {self.imgsz}",
            ),
        ]
        checks += [
            (
                self.compress in (None, *COMPRESSIONS),
                f"compress must be one of {COMPRESSIONS} or unset, received {self.compress!r}",
            ),
            (
                self.qat_preserve in (None, *PRESERVED_IN_QAT),
                f"qat_preserve must be one of {PRESERVED_IN_QAT} or unset, received {self.qat_preserve!r}",
            ),
            (2 <= self.clusters <= 256, f"clusters must be from 2 to 256, received {self.clusters}"),
            (0.0 < self.sparsity < 1.0, f"sparsity must be between 0 and 1, received {self.sparsity}"),
        ]
        checks.append((self.task in TASKS, f"task must be one of {sorted(TASKS)}, received {self.task!r}"))
        if self.task != DEFAULT_TASK:
            checks.append(
                (
                    not (self.qat_from or self.compress),
                    f"task: QAT and compress take none (QAT keeps the task of the model it fine-tunes; compress trains "
                    f"detectors only), received {self.task!r}",
                )
            )
        if self.compress:
            checks += [
                (bool(self.init_weights), "compress fine-tunes a trained model: give it with --weights / --model"),
                (not self.qat_from, "compress and QAT are two stages: compress first, then qat --preserve"),
                # EMA averages every variable, and clustering keeps integer centroid indices.
                (not self.ema, "compress trains without EMA weights: pass --no-ema"),
            ]
        if self.qat_preserve and not self.qat_from:
            checks.append((False, "qat_preserve belongs to a QAT run (qat_from)"))
        if self.qat_preserve == "cluster" and self.ema:
            # The averaged kernel would mix centroids a weight moved between: more values than clusters.
            checks.append((False, "cluster-preserving QAT trains without EMA weights: set ema to false"))
        if self.qat_from and self.mixed_precision:
            checks.append((False, "quantization-aware training runs in float32; drop --mixed-precision"))
        for ok, message in checks:
            if not ok:
                raise ConfigError(message + ".")

    def to_dict(self):
        values = dataclasses.asdict(self)
        if values["task"] == DEFAULT_TASK:
            del values["task"]
        return values

    @classmethod
    def from_dict(cls, values, source="train config"):
        return cls(**strict_fields(cls, values, source))
