"""Conversion recipes: what a TFLite artifact is, as data. Parsed strictly from YAML, validated once."""

import dataclasses
from pathlib import Path
from typing import Optional

import yaml

from tfyolo.config import check_plain_name, strict_fields
from tfyolo.data.calibration_images import check_calibration_budget
from tfyolo.errors import ConfigError
from tfyolo.training.train_config import COMPRESSIONS

# mode -> what the converter must do. The dispatch table of `tfyolo.quantization.converter` keys on these.
MODES = ("fp32", "fp16", "dynamic", "int8", "int16x8")
IO_TYPES = ("float32", "int8", "uint8", "int16")
# Who quantizes: TFLiteConverter (one pass over the Keras graph) or ai-edge-quantizer (op by op on the fp32 TFLite,
# per-layer 16-bit activations; tfyolo.quantization.aeq).
QUANTIZERS = ("tflite_converter", "ai_edge_quantizer")
# How ai-edge-quantizer summarizes each tensor's range over the calibration images (tfyolo.quantization.aeq): the
# extremes on the prediction outputs and its moving average of the per-image minima and maxima elsewhere (the
# default), the moving average everywhere, or the extremes everywhere (as TFLiteConverter keeps them).
RANGE_STATISTICS = ("outputs_mse", "outputs_min_max", "moving_average", "min_max", "outputs_mean", "outputs_percentile")
# Modes whose artifact promises integer-only compute (checked after conversion).
FULL_INTEGER_MODES = ("int8", "int16x8")
# The highest score floor a recipe may set: Ultralytics' val keeps scores from 0.001 and NMS at 0.01 is common,
# so a floor above that would change what a user's threshold keeps.
MAX_MIN_SCORE = 0.01
# The largest side a recipe may rebuild a model at: calibration holds images x 3 x side^2 x 4 bytes, so at 2048 a
# 32-image set is 1.6 GB and the 4 GiB budget (tfyolo.data.calibration_images) holds 85; at 8192 one image is 0.8 GB.
MAX_RECIPE_INPUT_SIZE = 2048


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


# Field -> (what a reader is told, check). YAML reads `no` as False but `"no"` as a string, and `many` or 2.5 as
# what they are: a value of the wrong type is an error, never coerced (a quoted "no" is truthy).
FIELD_TYPES = {
    "name": ("a string", lambda value: isinstance(value, str) and bool(value)),
    "mode": (f"one of {MODES}", lambda value: value in MODES),
    "io_type": (f"one of {IO_TYPES}", lambda value: value in IO_TYPES),
    "per_channel": ("true or false", lambda value: isinstance(value, bool)),
    "calibration_images": ("a positive integer", lambda value: _is_int(value) and value >= 1),
    "calibration_seed": ("a non-negative integer", lambda value: _is_int(value) and value >= 0),
    "keep_float": (
        "a list of layer names or patterns",
        lambda value: isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value),
    ),
    "description": ("a string", lambda value: isinstance(value, str)),
    "quantizer": (f"one of {QUANTIZERS}", lambda value: value in QUANTIZERS),
    "int16_layers": (
        "a list of layer names or patterns",
        lambda value: isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value),
    ),
    "compress": (f"one of {COMPRESSIONS} or null", lambda value: value is None or value in COMPRESSIONS),
    "clusters": ("an integer from 2 to 256", lambda value: _is_int(value) and 2 <= value <= 256),
    "sparsity": (
        "a share between 0 and 1",
        lambda value: isinstance(value, float) and not isinstance(value, bool) and 0 < value < 1,
    ),
    "compress_epochs": ("a positive integer", lambda value: _is_int(value) and value >= 1),
    "qat_epochs": ("a positive integer", lambda value: _is_int(value) and value >= 1),
    "input_size": (
        f"a multiple of 32 from 32 to {MAX_RECIPE_INPUT_SIZE}, or null",
        lambda value: value is None or (_is_int(value) and 32 <= value <= MAX_RECIPE_INPUT_SIZE and value % 32 == 0),
    ),
    "range_statistic": (f"one of {RANGE_STATISTICS} or null", lambda value: value is None or value in RANGE_STATISTICS),
    "concat_shared_range": (
        "a share above 0 and at most 1, or null",
        lambda value: value is None or (isinstance(value, float) and not isinstance(value, bool) and 0 < value <= 1),
    ),
    "bias_correction_layers": (
        "a list of layer names or patterns",
        lambda value: isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value),
    ),
    "min_score": (
        "a score above 0 and at most 0.01, or null",
        lambda value: value is None or (isinstance(value, float) and 0 < value <= MAX_MIN_SCORE),
    ),
}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One conversion recipe.

    Args:
        name: str. Artifact suffix: the file is `<model>_<name>.tflite`.
        mode: str. One of `MODES`.
        io_type: str. Input/output tensor type; only full-integer modes may leave float32.
        per_channel: bool. Per-channel (default) or per-tensor weight quantization.
        calibration_images: int. Representative images (int8/int16x8 only).
        calibration_seed: int. Which images are drawn.
        keep_float: tuple of str. Layer names or fnmatch patterns kept in float (selective quantization).
        description: str. One line for reports.
        quantizer: str. One of `QUANTIZERS`.
        int16_layers: tuple of str. Layer names or fnmatch patterns whose activations are 16-bit (int8 weights):
            mixed int8 / int16, with quantizer "ai_edge_quantizer".
        compress: str or None. "cluster" or "prune": the artifact is int8 of a model fine-tuned first into shared
            weights or zeros (`compress_epochs`, tfyolo compress), then through structure-preserving QAT
            (`qat_epochs`), on the train split of the model's data. None: a plain conversion.
        clusters: int. Shared values per layer (compress "cluster").
        sparsity: float. Share of zero weights (compress "prune").
        range_statistic: str or None. One of `RANGE_STATISTICS`, ai-edge-quantizer only (None there means the
            model family's, `for_family`; TFLiteConverter always keeps the extremes and takes None).
            ai-edge-quantizer's own moving average pulls a maximum reached on few images down (YOLO26's
            one-to-one class logits: true maximum +2.14 logit, the average -0.10, so every score above 0.5 read as
            0.5); "outputs_min_max" keeps the extremes on the prediction outputs only
            (`tfyolo.quantization.aeq.choose_ranges`); "outputs_mean" the same, with the plain mean of the
            per-image ranges inside the network; "outputs_mse" the same, with the range of least squared
            quantization error inside, no wider than the moving average (`tfyolo.quantization.mse_ranges`);
            "outputs_percentile" the same, with the pooled values' 0.01th and 99.99th percentiles inside, no wider
            than the moving average (`tfyolo.quantization.percentile_ranges`).
        min_score: float or None. The lowest class score the int8 artifact resolves: the class logits' calibrated
            range starts at logit(min_score), so their 256 steps cover the scores a threshold keeps
            (`tfyolo.quantization.score_floor`); a lower score reads as min_score. None: the calibrated min-max.
        concat_shared_range: float or None. ai-edge-quantizer only: a CONCATENATION input whose calibrated range lies
            inside the output's and spans at least this share of it takes the output's range even where other
            layers read it too, so it is rounded once, on the output's grid, instead of on its own grid and again
            by a requantizing QUANTIZE (`tfyolo.quantization.concat_requantization.share_concatenation_ranges`).
            None: such an input keeps its own range (an input nothing else reads always takes the output's).
        bias_correction_layers: tuple of str. ai-edge-quantizer only: the convolutions of these layers (names or
            fnmatch patterns) have their mean per-channel output error against the float model, measured on the
            first calibration images, taken out of their int32 bias, layer by layer in graph order
            (`tfyolo.quantization.bias_correction`); operators, ranges and latency are unchanged.
        input_size: int or None. Convert the model rebuilt at this square input side (its convolution weights do
            not depend on the size; calibration images are resized to it): the smaller inputs an NPU or MCU
            team ships. None: the model's own size.
    """

    name: str
    mode: str
    io_type: str = "float32"
    per_channel: bool = True
    calibration_images: int = 100
    calibration_seed: int = 0
    keep_float: tuple = ()
    description: str = ""
    quantizer: str = "tflite_converter"
    int16_layers: tuple = ()
    compress: Optional[str] = None
    clusters: int = 16
    sparsity: float = 0.5
    compress_epochs: int = 5
    qat_epochs: int = 3
    min_score: Optional[float] = None
    input_size: Optional[int] = None
    range_statistic: Optional[str] = None
    concat_shared_range: Optional[float] = None
    bias_correction_layers: tuple = ()

    def __post_init__(self):
        check_plain_name(self.name, "recipe name")
        if self.mode not in MODES:
            raise ConfigError(f"recipe {self.name!r}: mode must be one of {MODES}, received {self.mode!r}.")
        if self.io_type not in IO_TYPES:
            raise ConfigError(f"recipe {self.name!r}: io_type must be one of {IO_TYPES}, received {self.io_type!r}.")
        integer_io = {"int8": ("int8", "uint8"), "int16x8": ("int16",)}
        if self.io_type != "float32" and self.io_type not in integer_io.get(self.mode, ()):
            raise ConfigError(
                f"recipe {self.name!r}: io_type {self.io_type!r} needs a full-integer mode with that type "
                f"({integer_io}); mode {self.mode!r} keeps float32 I/O."
            )
        if self.calibration_images < 1:
            raise ConfigError(f"recipe {self.name!r}: calibration_images must be >= 1.")
        if self.keep_float and self.mode not in FULL_INTEGER_MODES:
            raise ConfigError(f"recipe {self.name!r}: keep_float only applies to full-integer modes.")
        if self.quantizer not in QUANTIZERS:
            raise ConfigError(
                f"recipe {self.name!r}: quantizer must be one of {QUANTIZERS}, received {self.quantizer!r}."
            )
        if self.quantizer == "ai_edge_quantizer" and (
            self.mode != "int8" or self.io_type not in ("int8", "float32") or self.keep_float
        ):
            raise ConfigError(
                f"recipe {self.name!r}: quantizer ai_edge_quantizer makes static int8 with int8 I/O, or float32 I/O "
                "through a QUANTIZE / DEQUANTIZE at the boundary (16-bit activations through int16_layers); it takes "
                f"mode int8, io_type int8 or float32 and no keep_float, received mode {self.mode!r}, io_type "
                f"{self.io_type!r}."
            )
        if self.int16_layers and self.quantizer != "ai_edge_quantizer":
            raise ConfigError(
                f"recipe {self.name!r}: int16_layers needs quantizer: ai_edge_quantizer (TFLiteConverter has no "
                "per-layer activation width)."
            )
        if self.range_statistic is not None and (
            self.range_statistic not in RANGE_STATISTICS or self.quantizer != "ai_edge_quantizer"
        ):
            raise ConfigError(
                f"recipe {self.name!r}: range_statistic chooses how ai-edge-quantizer summarizes its calibration "
                f"ranges, one of {RANGE_STATISTICS} with quantizer: ai_edge_quantizer (TFLiteConverter keeps the "
                f"extremes); received {self.range_statistic!r} with quantizer {self.quantizer!r}. Hint: recipe "
                "files that --auto wrote before tfyolo chose ranges per tensor carry `range_statistic: "
                "moving_average` on every recipe; for TFLiteConverter delete that line."
            )
        if self.concat_shared_range is not None and self.quantizer != "ai_edge_quantizer":
            raise ConfigError(
                f"recipe {self.name!r}: concat_shared_range chooses ai-edge-quantizer's ranges at concatenations "
                f"(TFLiteConverter gives every input the output's scale); received quantizer {self.quantizer!r}."
            )
        if self.bias_correction_layers and self.quantizer != "ai_edge_quantizer":
            raise ConfigError(
                f"recipe {self.name!r}: bias_correction_layers corrects ai-edge-quantizer's int8 biases against the "
                f"float model's tensors of the same names; received quantizer {self.quantizer!r}."
            )
        if self.compress is not None and (
            self.compress not in COMPRESSIONS
            or self.mode != "int8"
            or self.quantizer != "tflite_converter"
            or self.keep_float
        ):
            raise ConfigError(
                f"recipe {self.name!r}: compress {self.compress!r} makes an int8 artifact (TFLiteConverter, no "
                f"keep_float) of a {' or '.join(COMPRESSIONS)} fine-tune; received mode {self.mode!r}, quantizer "
                f"{self.quantizer!r}."
            )
        if self.min_score is not None and (self.mode != "int8" or self.keep_float or self.compress is not None):
            raise ConfigError(
                f"recipe {self.name!r}: min_score sets the calibrated range of int8 class logits; it takes mode "
                f"int8 without keep_float or compress, received mode {self.mode!r}."
            )
        if self.input_size is not None and self.compress is not None:
            raise ConfigError(
                f"recipe {self.name!r}: input_size rebuilds the model for a plain conversion; a {self.compress} "
                "fine-tune trains at the model's own size. Compress first, then convert with input_size."
            )
        if self.input_size is not None and self.needs_calibration:  # the set the converter resizes to input_size
            check_calibration_budget(self.calibration_images, self.input_size, f"recipe {self.name!r}")
        object.__setattr__(self, "keep_float", tuple(self.keep_float))
        object.__setattr__(self, "int16_layers", tuple(self.int16_layers))
        object.__setattr__(self, "bias_correction_layers", tuple(self.bias_correction_layers))

    @property
    def needs_calibration(self):
        return self.mode in FULL_INTEGER_MODES

    @property
    def trains(self):
        """True for a recipe whose artifact comes from fine-tuning (compress): it is run only when named."""
        return self.compress is not None

    @property
    def promises_full_integer(self):
        return self.mode in FULL_INTEGER_MODES and not self.keep_float

    def for_family(self, family):
        """This recipe with what it leaves to the model filled in: an ai-edge-quantizer recipe that names no
        `range_statistic` takes its model's family's (`ModelFamily.int8_ranges`, measured per family; `family` is
        the ModelFamily, `tfyolo.models.detector_metadata.family_of` the model's metadata)."""
        if self.quantizer != "ai_edge_quantizer" or self.range_statistic is not None:
            return self
        return dataclasses.replace(self, range_statistic=family.int8_ranges)

    def to_dict(self):
        values = dataclasses.asdict(self)
        values["keep_float"] = list(self.keep_float)
        values["int16_layers"] = list(self.int16_layers)
        values["bias_correction_layers"] = list(self.bias_correction_layers)
        return values

    @classmethod
    def from_dict(cls, values, source="recipe"):
        values = strict_fields(cls, values, source)
        for key, value in values.items():
            expected, accepts = FIELD_TYPES[key]
            if not accepts(value):
                raise ConfigError(f"{source}: {key!r} must be {expected}, received {type(value).__name__} {value!r}.")
        return cls(**values)

    def to_yaml(self):
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def load_recipe(path):
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: recipe file not found.")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(error).split())}).")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file; a recipe is YAML.")
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a recipe is a mapping of {[f.name for f in dataclasses.fields(Recipe)]}.")
    values.setdefault("name", path.stem)
    return Recipe.from_dict(values, source=str(path))
