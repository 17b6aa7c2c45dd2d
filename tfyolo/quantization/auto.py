"""Accuracy-aware quantization: the fastest recipe whose measured mAP50-95 drop stays within a budget.

Candidates, in order: full int8; int8 with the most sensitive layers kept in float (1, 2, 4, 8 of them); int8
through ai-edge-quantizer, alone and with the most sensitive blocks at 16-bit activations (1, 2, 4, 8); int16x8;
fp16. With prefer="int8" the search stops at the first candidate within the budget (the order above
is already fastest-first on CPUs); prefer="latency" or "size" evaluates them all and picks the best within
budget. Evaluation always runs on the validation split, never on the calibration images.
"""

import dataclasses

from tfyolo.quantization.aeq import block_pattern
from tfyolo.quantization.recipe import Recipe

PREFERENCES = ("int8", "latency", "size")
FLOAT_LAYER_STEPS = (1, 2, 4, 8)


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

    def row(self):
        return {
            "recipe": self.recipe.name,
            "mode": self.recipe.mode,
            "keep_float": list(self.keep_float),
            "int16_layers": list(self.recipe.int16_layers),
            "map50_95": self.map50_95,
            "delta_map50_95": self.delta_map50_95,
            "latency_ms_p50": self.latency_ms_p50,
            "size_bytes": self.size_bytes,
            "error": self.error,
        }


def candidate_recipes(base, ranked_layers):
    """Yields the search's recipes lazily: the sensitivity ranking is only computed if plain int8 misses."""
    yield Recipe(**{**base.to_dict(), "name": "int8"})
    layers = ranked_layers()
    for count in FLOAT_LAYER_STEPS:
        if count > len(layers):
            break
        keep = tuple(layers[:count])
        yield Recipe(**{**base.to_dict(), "name": f"int8_float{count}", "keep_float": keep})
    aeq = {**base.to_dict(), "quantizer": "ai_edge_quantizer", "io_type": "float32"}
    yield Recipe(**{**aeq, "name": "int8_aeq"})
    for count in FLOAT_LAYER_STEPS:
        if count > len(layers):
            break
        blocks = tuple(block_pattern(layer) for layer in layers[:count])
        yield Recipe(**{**aeq, "name": f"int8_int16act{count}", "int16_layers": blocks})
    yield Recipe(**{**base.to_dict(), "name": "int16x8", "mode": "int16x8", "io_type": "float32"})
    yield Recipe(name="fp16", mode="fp16", description="float16 weights")


def search(base_recipe, ranked_layers, measure, max_drop, prefer="int8", progress=None):
    """Runs the search.

    ranked_layers: callable -> layer names, most sensitive first.
    measure: callable(Recipe) -> Candidate with map50_95 / delta / latency / size filled in (or error).
    Returns (chosen Candidate or None, every Candidate tried, closest Candidate).
    """
    if prefer not in PREFERENCES:
        raise ValueError(f"prefer must be one of {PREFERENCES}, received {prefer!r}")
    tried = []
    for recipe in candidate_recipes(base_recipe, ranked_layers):
        candidate = measure(recipe)
        tried.append(candidate)
        if progress:
            progress(candidate)
        meets = candidate.error is None and -candidate.delta_map50_95 <= max_drop + 1e-9
        if meets and prefer == "int8":
            return candidate, tried, candidate
    within = [c for c in tried if c.error is None and -c.delta_map50_95 <= max_drop + 1e-9]
    key = (lambda c: c.latency_ms_p50) if prefer == "latency" else (lambda c: c.size_bytes)
    valid = [c for c in tried if c.error is None]
    closest = max(valid, key=lambda c: c.delta_map50_95) if valid else None
    return (min(within, key=key) if within else None), tried, closest
