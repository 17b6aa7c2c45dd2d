"""Accuracy-aware quantization: the fastest recipe whose measured mAP50-95 drop stays within a budget.

Candidates, in order: the built-in int8 (ai-edge-quantizer with tfyolo's ranges); the same with the most sensitive
blocks at 16-bit activations (1, 2, 4, 8 of them); int8 after a short quantization-aware training by distillation
(QAT on the calibration images, the float model's outputs its targets, when the search is given epochs for it;
`tfyolo.qat.distillation`); int16x8; fp16. With prefer="int8" the search stops at the first candidate within
the budget. The order is fastest-first on CPUs but for QAT, which costs training time and is tried after the 16-bit
blocks: its artifact runs at int8's speed, but a few epochs on few images are the least predictable candidate.
prefer="latency" or "size" evaluates them all and picks the best within budget. prefer="target" searches for an
Ethos-U NPU: only the candidates an NPU can run at all (integer compute, integer I/O), all evaluated, and the one
within budget with every operator on the NPU and the lowest Vela estimate chosen (a candidate that leaves its float
I/O's QUANTIZE / DEQUANTIZE to the CPU only when none runs wholly on the NPU: Vela's estimate leaves out the CPU's
share). Evaluation always runs on the validation split, never on the calibration images, and the QAT candidate
learns from the calibration images only.
"""

import dataclasses

from tfyolo.evaluation.model_evaluation import drop_exceeds, worst_delta
from tfyolo.quantization.aeq import block_pattern
from tfyolo.quantization.recipe import Recipe


def _within(candidate, max_drop):
    """Measured, and no mAP50-95 of its task (boxes, masks) fell more than `max_drop` points."""
    return candidate.error is None and not drop_exceeds(candidate.row(), max_drop)


PREFERENCES = ("int8", "latency", "size", "target")
FLOAT_LAYER_STEPS = (1, 2, 4, 8)
# The candidate whose int8 artifact is converted from a QAT model trained by the search, not from the float model.
QAT_CANDIDATE = "int8_qat"


@dataclasses.dataclass
class Candidate:
    recipe: Recipe
    keep_float: tuple
    map50_95: float = None
    delta_map50_95: float = None
    latency_ms_p50: float = None
    size_bytes: int = None
    content: bytes = None
    error: str = None
    # prefer="target": Vela's estimate for the search's NPU, the operators it leaves on the CPU, or why it cannot.
    target_ms: float = None
    target_cpu_operators: dict = None
    target_error: str = None
    # A task's own scores beside the boxes' (`mask_map50_95`, `delta_mask_map50_95`): a budget holds them too.
    task_columns: dict = dataclasses.field(default_factory=dict)

    def row(self):
        return self.task_columns | {
            "recipe": self.recipe.name,
            "mode": self.recipe.mode,
            "keep_float": list(self.keep_float),
            "input_size": self.recipe.input_size,
            "int16_layers": list(self.recipe.int16_layers),
            "map50_95": self.map50_95,
            "delta_map50_95": self.delta_map50_95,
            "latency_ms_p50": self.latency_ms_p50,
            "size_bytes": self.size_bytes,
            "error": self.error,
            "target_ms": self.target_ms,
            "target_cpu_operators": self.target_cpu_operators,
            "target_error": self.target_error,
        }

    @property
    def all_on_npu(self):
        return self.target_ms is not None and not self.target_cpu_operators


def is_qat_candidate(recipe):
    """The candidate converted from the QAT model the search trains (with float or int8 I/O)."""
    return recipe.name in (QAT_CANDIDATE, QAT_CANDIDATE + "_int8io")


def candidate_recipes(base, ranked_layers, qat_epochs=0, for_npu=False, smaller_sizes=()):
    """Yields the search's recipes lazily: the sensitivity ranking is only computed if the first candidate misses.

    base: the built-in int8 recipe (ai-edge-quantizer with tfyolo's ranges; int8 I/O for an NPU search).
    qat_epochs: 0 leaves the QAT candidate out. for_npu: only what an NPU can run (no fp16; int16x8 with int16 I/O).
    smaller_sizes: input sides at which the int8 candidate is tried again last (an NPU search: the input size is the
    largest lever on an NPU's time).

    Pruned by what was measured: TFLiteConverter's int8 and its variants with the worst layers kept in float scored
    below ai-edge-quantizer's int8 on every model measured (80-class COCO models by 0.5-1.5 pt, docs/quantization.md),
    so the search does not spend a conversion and an evaluation on them; `tfyolo sensitivity` still measures them.
    """
    io_suffix = "_int8io" if base.io_type == "int8" else ""
    yield base
    layers = ranked_layers()
    for count in FLOAT_LAYER_STEPS:
        if count > len(layers):
            break
        blocks = tuple(block_pattern(layer) for layer in layers[:count])
        yield Recipe(**{**base.to_dict(), "name": f"int8_int16act{count}{io_suffix}", "int16_layers": blocks})
    if qat_epochs:
        # TFLiteConverter reads the ranges QAT learned (its fake-quant ops); ai-edge-quantizer would calibrate anew.
        yield Recipe(
            name=QAT_CANDIDATE + io_suffix,
            mode="int8",
            io_type=base.io_type,
            calibration_images=base.calibration_images,
            description=f"int8 from the model after {qat_epochs} epoch(s) of quantization-aware distillation",
        )
    int16_io = {"io_type": "int16", "name": "int16x8_int16io"} if for_npu else {"io_type": "float32", "name": "int16x8"}
    yield Recipe(mode="int16x8", calibration_images=base.calibration_images, **int16_io)
    if not for_npu:
        yield Recipe(name="fp16", mode="fp16", description="float16 weights")
    for size in smaller_sizes:
        yield Recipe(**{**base.to_dict(), "name": f"{base.name}_{size}px", "input_size": size})


def search(base_recipe, ranked_layers, measure, max_drop, prefer="int8", progress=None, qat_epochs=0, smaller_sizes=()):
    """Runs the search.

    ranked_layers: callable -> layer names, most sensitive first.
    measure: callable(Recipe) -> Candidate with map50_95 / delta / latency / size filled in (or error); for the
        recipe named QAT_CANDIDATE it trains the QAT model first.
    qat_epochs: the QAT candidate's training epochs; 0 leaves it out.
    smaller_sizes: input sides tried last, for prefer="target" only.
    Returns (chosen Candidate or None, every Candidate tried, closest Candidate).
    """
    if prefer not in PREFERENCES:
        raise ValueError(f"prefer must be one of {PREFERENCES}, received {prefer!r}")
    tried = []
    for_npu = prefer == "target"
    sizes = smaller_sizes if for_npu else ()
    for recipe in candidate_recipes(base_recipe, ranked_layers, qat_epochs, for_npu, sizes):
        candidate = measure(recipe)
        tried.append(candidate)
        if progress:
            progress(candidate)
        if _within(candidate, max_drop) and prefer == "int8":
            return candidate, tried, candidate
    within = [c for c in tried if _within(c, max_drop)]
    if prefer == "target":
        within = [c for c in within if c.target_ms is not None]
    keys = {
        "latency": lambda c: c.latency_ms_p50,
        "size": lambda c: c.size_bytes,
        "target": lambda c: (not c.all_on_npu, c.target_ms),
    }
    key = keys.get(prefer, keys["size"])
    valid = [c for c in tried if c.error is None]
    closest = max(valid, key=lambda c: worst_delta(c.row())) if valid else None
    return (min(within, key=key) if within else None), tried, closest
