"""The report says what to ship: the rule per deployment, on rows whose answer is known by construction."""

import pytest

from tfyolo.errors import ModelError
from tfyolo.jobs.recommendation import DEFAULT_BUDGET, MCU_MAX_MODEL_BYTES, recommend

FLOAT_IO = {"images": "float32", "boxes": "float32"}
INT8_IO = {"images": "int8", "boxes": "int8"}


def row(recipe, delta, ms, integer=False, io=FLOAT_IO, size=1000, error=None):
    return {
        "recipe": recipe,
        "path": f"/out/m_{recipe}.tflite",
        "delta_map50_95": delta,
        "latency_ms_p50": ms,
        "size_bytes": size,
        "full_integer": integer,
        "io_types": io,
        "error": error,
    }


ROWS = [
    {"recipe": "float", "path": "m.keras", "delta_map50_95": 0.0, "latency_ms_p50": None, "size_bytes": 1},
    row("fp32", 0.0, 10.0),
    row("fp16", 0.0, 9.0),
    row("int8", -0.9, 3.0, integer=True),  # fastest, but outside the default budget
    row("int8_aeq_int8io", -0.3, 3.5, integer=True, io=INT8_IO, size=900),
    row("int8_int8io", -0.45, 3.2, integer=True, io=INT8_IO, size=800),
    row("broken", 0.0, 0.1, error="conversion failed"),
]
ARENAS = {"int8_aeq_int8io": 5000, "int8_int8io": 7000}


def arena_of(path):
    return ARENAS[path.split("m_")[1].removesuffix(".tflite")]


def test_each_deployment_gets_its_rule():
    chosen = recommend(ROWS, arena_of=arena_of)
    # CPU: int8 (3.0 ms) loses 0.9 > 0.5; int8_int8io (3.2 ms, -0.45) is the fastest within the budget.
    assert chosen["cpu"]["recipe"] == "int8_int8io"
    # NPU: integer-only with int8 I/O only; both are within 0.5, int8_int8io is faster.
    assert chosen["npu"]["recipe"] == "int8_int8io"
    # MCU: the smaller arena among the integer-I/O rows within the budget.
    assert (chosen["mcu"]["recipe"], chosen["mcu"]["arena_bytes"]) == ("int8_aeq_int8io", 5000)
    assert DEFAULT_BUDGET == 0.5


def test_the_gate_is_the_budget():
    chosen = recommend(ROWS, max_drop=0.35, arena_of=arena_of)
    assert chosen["cpu"]["recipe"] == "int8_aeq_int8io"  # within 0.35: fp32, fp16 and it (-0.3); it is the fastest
    assert chosen["npu"]["recipe"] == "int8_aeq_int8io"
    chosen = recommend(ROWS, max_drop=1.0)
    assert chosen["cpu"]["recipe"] == "int8"
    assert chosen["mcu"] is None  # no TFLite Micro: no MCU answer


def test_nothing_within_the_budget_gives_the_most_accurate_and_says_so():
    rows = [row("int8", -2.0, 3.0, integer=True, io=INT8_IO), row("int8_b", -1.0, 4.0, integer=True, io=INT8_IO)]
    chosen = recommend(rows, max_drop=0.2)
    assert chosen["npu"]["recipe"] == "int8_b"
    assert "none within 0.2" in chosen["npu"]["why"]


def test_an_mcu_answer_skips_what_tflite_micro_cannot_run_or_hold():
    def refusing(path):
        if "int8_aeq" in path:
            raise ModelError("TFLite Micro has no kernel for ['GELU']")
        return 7000

    chosen = recommend(ROWS, arena_of=refusing)
    assert chosen["mcu"]["recipe"] == "int8_int8io"
    too_large = [dict(r, size_bytes=MCU_MAX_MODEL_BYTES + 1) for r in ROWS]
    assert recommend(too_large, arena_of=arena_of)["mcu"] is None


@pytest.mark.parametrize("recipe", ["float", "broken"])
def test_the_float_reference_and_failed_rows_are_never_recommended(recipe):
    only = [r for r in ROWS if r["recipe"] == recipe]
    assert recommend(only) == {"cpu": None, "npu": None, "mcu": None}


def test_a_segmentation_row_is_held_to_its_mask_drop_too():
    # int8 keeps its boxes (-0.1) but loses 0.8 mask points: outside 0.5, so the CPU answer is int8_b (-0.3 / -0.4).
    masks = [
        dict(row("int8", -0.1, 3.0, integer=True, io=INT8_IO), delta_mask_map50_95=-0.8),
        dict(row("int8_b", -0.3, 3.5, integer=True, io=INT8_IO), delta_mask_map50_95=-0.4),
    ]
    chosen = recommend(masks)
    assert chosen["cpu"]["recipe"] == "int8_b"
    assert chosen["cpu"]["delta_mask_map50_95"] == -0.4
    # Nothing within 0.2: the most accurate is the one whose worst drop is least (int8_b: 0.4 against int8's 0.8).
    chosen = recommend(masks, max_drop=0.2)
    assert chosen["cpu"]["recipe"] == "int8_b" and "none within 0.2" in chosen["cpu"]["why"]


def test_the_report_shows_mask_columns_only_for_rows_that_have_masks():
    from tfyolo.jobs.report import format_row, row_columns, task_delta_text

    detection = row("int8", -0.1, 3.0)
    assert "mask" not in " ".join(header for _, header, _ in row_columns([detection]))
    segmentation = dict(detection, mask_map50_95=0.3112, delta_mask_map50_95=-0.28)
    headers = [header for _, header, _ in row_columns([detection, segmentation])]
    assert headers.index("mask mAP50-95") == headers.index("delta mAP50-95 (points)") + 1
    assert "| 0.3112 | -0.28 |" in format_row(segmentation)
    # The one-line summaries (--auto's progress and its "Chosen:" line) name the mask drop too.
    assert (task_delta_text(segmentation), task_delta_text(detection)) == (", mask -0.28 pt", "")
