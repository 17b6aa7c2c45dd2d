"""What to ship: from a convert job's scored rows, the artifact to hand each kind of deployment, and why.

- cpu: LiteRT with XNNPACK on an application processor: the fastest artifact whose mAP50-95 drop stays within the
  budget (any compute, any I/O: XNNPACK runs float, fp16 and int8 alike).
- npu: an NPU or DSP (Ethos-U, Hexagon, Edge TPU...): integer-only compute with int8 I/O, since such a delegate
  takes the whole graph only when no tensor is float; the fastest within the budget on this CPU (the ranking of
  int8 graphs that differ only in their ranges or a few layers carries over), else the most accurate.
- mcu: TFLite Micro on a microcontroller: integer-only with int8 I/O again, and the smallest tensor arena (the RAM
  the model needs beside its weights), measured by TFLite Micro itself; within the budget, else the most accurate.

The budget is the job's gate (--max-drop) where it has one, else DEFAULT_BUDGET. Without evaluation nothing is
known of accuracy, and the choice says so.
"""

from tfyolo.errors import TfyoloError
from tfyolo.evaluation.model_evaluation import drop_exceeds, worst_delta

# mAP50-95 points an artifact may lose and still be recommended, when the job sets no gate: `--auto`'s default.
DEFAULT_BUDGET = 0.5
# An MCU build holds its model in flash: nothing larger fits any microcontroller, and TFLite Micro's loading arena
# (64x the file) would pass its 2 GiB limit for models of about 32 MiB and up.
MCU_MAX_MODEL_BYTES = 16 << 20
INTEGER_IO = ("int8", "uint8")

DEPLOYMENTS = {
    "cpu": "CPU (LiteRT, XNNPACK)",
    "npu": "NPU / DSP (integer-only, int8 I/O)",
    "mcu": "MCU (TFLite Micro, integer-only, int8 I/O)",
}


def _usable(row):
    return row.get("path") and not row.get("error") and row["recipe"] != "float"


def _integer_io(row):
    types = (row.get("io_types") or {}).values()
    return bool(row.get("full_integer")) and bool(types) and all(dtype in INTEGER_IO for dtype in types)


def _within(row, budget):
    """Measured, and neither its box nor its task's mAP50-95 (masks) fell more than `budget` points."""
    return row.get("delta_map50_95") is not None and not drop_exceeds(row, budget)


def _choose(rows, budget, key):
    """The best row by `key` among those within the budget; else the most accurate one (None when no row)."""
    within = [row for row in rows if _within(row, budget)]
    if within:
        return min(within, key=key), f"within {budget} pt"
    measured = [row for row in rows if row.get("delta_map50_95") is not None]
    if measured:
        return max(measured, key=worst_delta), f"the most accurate; none within {budget} pt"
    return (min(rows, key=key), "accuracy not measured") if rows else (None, None)


def _latency(row):
    return row.get("latency_ms_p50") if row.get("latency_ms_p50") is not None else float("inf")


def recommend(rows, max_drop=None, arena_of=None):
    """{deployment: entry} for DEPLOYMENTS; entry None where no artifact suits it.

    arena_of: callable(path) -> tensor arena bytes (TFLite Micro), or None to leave the MCU choice out."""
    budget = DEFAULT_BUDGET if max_drop is None else max_drop
    usable = [row for row in rows if _usable(row)]
    integer = [row for row in usable if _integer_io(row)]
    chosen = {}
    row, why = _choose(usable, budget, _latency)
    chosen["cpu"] = _entry(row, f"fastest {why}" if why and why.startswith("within") else why)
    row, why = _choose(integer, budget, _latency)
    chosen["npu"] = _entry(row, f"fastest integer-only {why}" if why and why.startswith("within") else why)
    chosen["mcu"] = _mcu(integer, budget, arena_of)
    return chosen


def _mcu(integer, budget, arena_of):
    if arena_of is None:
        return None
    arenas = {}
    for row in integer:
        if row["size_bytes"] <= MCU_MAX_MODEL_BYTES:
            try:
                arenas[row["recipe"]] = arena_of(row["path"])
            except TfyoloError:
                continue  # an operator TFLite Micro lacks: not for a microcontroller
    fitting = [row for row in integer if row["recipe"] in arenas]
    row, why = _choose(fitting, budget, lambda row: arenas[row["recipe"]])
    if row is None:
        return None
    why = f"smallest arena {why}" if why.startswith("within") else why
    return dict(_entry(row, why), arena_bytes=arenas[row["recipe"]])


def _entry(row, why):
    if row is None:
        return None
    return {
        "recipe": row["recipe"],
        "path": row["path"],
        "delta_map50_95": row.get("delta_map50_95"),
        **{key: value for key, value in row.items() if key.startswith("delta_") and key.endswith("_map50_95")},
        "latency_ms_p50": row.get("latency_ms_p50"),
        "size_bytes": row.get("size_bytes"),
        "why": why,
    }
