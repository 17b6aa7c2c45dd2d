"""Accuracy-aware quantization on a tiny model: sensitivity ranking and the budgeted search."""

import json

import pytest
from click.testing import CliRunner

from tfyolo.quantization.auto import Candidate, search
from tfyolo.quantization.recipe import Recipe


def fake_measure(drops):
    """measure() that reports a fixed drop per candidate name, latency in search order."""

    def measure(recipe):
        return Candidate(
            recipe=recipe,
            keep_float=recipe.keep_float,
            map50_95=0.5 - drops[recipe.name] / 100,
            delta_map50_95=-drops[recipe.name],
            latency_ms_p50=len(recipe.name),
            size_bytes=1,
        )

    return measure


AEQ = dict(mode="int8", quantizer="ai_edge_quantizer")
CPU_BASE = Recipe(name="int8", io_type="float32", **AEQ)
NPU_BASE = Recipe(name="int8_int8io", io_type="int8", **AEQ)


def test_search_stops_at_the_first_candidate_within_budget():
    drops = {"int8": 2.0, "int8_int16act1": 1.5, "int8_int16act2": 0.4, "int8_int16act4": 0.1, "fp16": 0.0}
    ranked_calls = []

    def ranked():
        ranked_calls.append(1)
        return ["a_conv", "b", "c", "d"]

    chosen, tried, _ = search(CPU_BASE, ranked, fake_measure(drops), max_drop=0.5)
    assert chosen.recipe.name == "int8_int16act2" and chosen.recipe.int16_layers == ("a_*", "b")
    assert [c.recipe.name for c in tried] == ["int8", "int8_int16act1", "int8_int16act2"]
    assert len(ranked_calls) == 1


def test_a_segmenter_s_candidate_must_keep_its_masks_within_budget_too():
    drops = {"int8": 0.1, "int8_int16act1": 0.2, "fp16": 0.0}
    mask_drops = {"int8": 0.9, "int8_int16act1": 0.3, "fp16": 0.0}

    def measure(recipe):
        candidate = fake_measure(drops)(recipe)
        candidate.task_columns = {"delta_mask_map50_95": -mask_drops[recipe.name]}
        return candidate

    chosen, tried, _ = search(CPU_BASE, lambda: ["a_conv"], measure, max_drop=0.5)
    # int8 keeps its boxes (0.1) but loses 0.9 mask points: the search goes on to the 16-bit block.
    assert [c.recipe.name for c in tried] == ["int8", "int8_int16act1"] and chosen.recipe.name == "int8_int16act1"
    assert chosen.row()["delta_mask_map50_95"] == -0.3


def test_the_builtin_int8_within_budget_never_ranks_layers():
    def ranked():
        raise AssertionError("the ranking must not run when the built-in int8 meets the budget")

    chosen, tried, _ = search(CPU_BASE, ranked, fake_measure({"int8": 0.4}), max_drop=0.5)
    assert chosen.recipe is CPU_BASE and len(tried) == 1


def test_an_npu_search_keeps_what_the_npu_runs_and_chooses_by_its_estimate():
    """prefer="target": no fp16, int8 and int16 I/O; every candidate measured; within budget, wholly on the NPU beats
    a lower estimate that leaves an operator to the CPU."""
    drops = {"int8_int8io": 0.2, "int8_qat_int8io": 0.3, "int16x8_int16io": 0.1}
    drops |= {f"int8_int16act{count}_int8io": 0.2 for count in (1, 2)}
    estimates = {"int8_int8io": 8.0, "int8_qat_int8io": 9.5, "int16x8_int16io": 20.0}
    # Say Vela leaves an operator it cannot run to the CPU in these.
    cpu_fallback = {"int8_int8io", "int8_int16act1_int8io", "int8_int16act2_int8io"}

    def measure(recipe):
        candidate = fake_measure(drops)(recipe)
        candidate.target_ms = estimates.get(recipe.name, 12.0)
        candidate.target_cpu_operators = {"TRANSPOSE": 1} if recipe.name in cpu_fallback else {}
        return candidate

    chosen, tried, _ = search(NPU_BASE, lambda: ["a", "b"], measure, max_drop=0.5, prefer="target", qat_epochs=1)
    names = [c.recipe.name for c in tried]
    assert names == [
        "int8_int8io",
        "int8_int16act1_int8io",
        "int8_int16act2_int8io",
        "int8_qat_int8io",
        "int16x8_int16io",
    ]
    assert {c.recipe.io_type for c in tried[:-1]} == {"int8"} and tried[-1].recipe.io_type == "int16"
    assert chosen.recipe.name == "int8_qat_int8io"
    # A smaller input size is tried last; wholly on the NPU and faster, it wins.
    drops |= {"int8_int8io_256px": 0.4}
    estimates |= {"int8_int8io_256px": 6.0}
    sized, tried_sized, _ = search(
        NPU_BASE, lambda: ["a", "b"], measure, 0.5, "target", qat_epochs=1, smaller_sizes=(256,)
    )
    assert [c.recipe.name for c in tried_sized[len(tried) :]] == ["int8_int8io_256px"]
    assert tried_sized[-1].recipe.input_size == 256 and tried[0].recipe.input_size is None
    assert sized.recipe.name == "int8_int8io_256px"
    drops |= {"int8_int8io_256px": 0.9}
    # With no candidate wholly on the NPU within budget, the lowest estimate among the rest.
    drops["int8_qat_int8io"] = drops["int16x8_int16io"] = 1.0
    chosen, _, _ = search(NPU_BASE, lambda: ["a", "b"], measure, max_drop=0.5, prefer="target", qat_epochs=1)
    assert chosen.recipe.name == "int8_int8io"


def test_impossible_budget_names_the_closest():
    drops = {"int8": 2.0, "int8_int16act1": 0.5, "int16x8": 0.3, "fp16": 0.2}
    chosen, tried, closest = search(CPU_BASE, lambda: ["a"], fake_measure(drops), max_drop=-1)
    assert chosen is None and closest.recipe.name == "fp16" and len(tried) == 4


def test_the_candidates_start_from_the_builtin_int8_and_convert_qat_with_tflite_converter():
    from tfyolo.quantization.auto import candidate_recipes

    recipes = list(candidate_recipes(CPU_BASE, lambda: ["stage2_cv1a_conv", "head_cls0_pred"], 3))
    assert [recipe.name for recipe in recipes] == [
        "int8",
        "int8_int16act1",
        "int8_int16act2",
        "int8_qat",
        "int16x8",
        "fp16",
    ]
    by_name = {recipe.name: recipe for recipe in recipes}
    assert by_name["int8_int16act2"].int16_layers == ("stage2_cv1a_*", "head_cls0_pred")
    assert {by_name[name].quantizer for name in ("int8", "int8_int16act1")} == {"ai_edge_quantizer"}
    assert {by_name[name].io_type for name in ("int8", "int8_int16act1", "int8_qat")} == {"float32"}
    # A QAT model's learned ranges are read by TFLiteConverter only.
    assert by_name["int8_qat"].quantizer == "tflite_converter"
    # The shipped recipe is what the search starts from.
    from tfyolo.quantization.recipes_dir import resolve_recipe

    assert resolve_recipe("int8").quantizer == "ai_edge_quantizer" and resolve_recipe("int8").io_type == "float32"


@pytest.fixture(scope="module")
def tiny_model_with_data(tiny_float_run, tiny_synthetic):
    return tiny_float_run, tiny_synthetic


def test_layer_sensitivity_ranks_named_layers(tiny_model_with_data):
    from tfyolo.data.calibration_images import load_calibration_images
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.quantization.sensitivity import layer_sensitivity

    model_path, data = tiny_model_with_data
    model = load_keras_model(model_path)
    images, _ = load_calibration_images(data, 64, 2)
    ranking = layer_sensitivity(model, images)
    names = {layer.name for layer in model.layers}
    assert len(ranking) > 50 and all(entry["layer"] in names for entry in ranking)
    assert {entry["section"] for entry in ranking} == {"backbone", "neck", "head"}
    values = [entry["rmse_over_scale"] for entry in ranking]
    assert values == sorted(values, reverse=True) and values[0] > 0 and values[-1] >= 0


def run_auto(model_and_data, out, budget, *extra):
    from tfyolo.cli.main import cli

    model_path, data = model_and_data
    arguments = ["convert", "--model", str(model_path), "--data", str(data), "--calibration", str(data)]
    return CliRunner().invoke(cli, arguments + ["--out", str(out), "--auto", "--max-drop", str(budget), *extra])


def test_auto_cli_budget_100_returns_plain_int8_and_reusable_recipe(squares, tmp_path):
    from tfyolo.quantization.recipe import load_recipe

    out = tmp_path / "auto"
    result = run_auto(squares, out, 100)
    assert result.exit_code == 0, result.output
    candidates = json.loads((out / "auto_candidates.json").read_text())
    assert [c["recipe"] for c in candidates["candidates"]] == ["int8"]
    recipe = load_recipe(out / "auto_recipe.yaml")
    assert recipe.mode == "int8" and recipe.keep_float == ()
    # The chosen artifact went through what `convert` does: the integer-only check and the embedded metadata.
    from tfyolo.metadata import read_embedded_metadata
    from tfyolo.tflite_runtime import inspect_tflite

    (chosen,) = out.glob("*_auto_int8.tflite")
    metadata = read_embedded_metadata(chosen)
    assert metadata["recipe"]["mode"] == "int8" and metadata["calibration"]["images_used"] > 0
    assert metadata["recipe"]["quantizer"] == "ai_edge_quantizer"
    assert list(metadata["names"].values()) == ["square"] and metadata["reg_max"] == 16
    assert inspect_tflite(chosen.read_bytes())["float_compute_ops"] == []


@pytest.mark.large
def test_an_impossible_budget_tries_every_candidate_and_names_the_closest(tiny_model_with_data, tmp_path):
    """A budget no candidate meets (the model must gain 100 points): the search runs every candidate, the QAT one
    included, and names the closest. The command line refuses such a budget; the library's search takes it."""
    from tfyolo.jobs.auto_session import AutoSession, run_auto

    model, data = tiny_model_with_data
    out = tmp_path / "auto"
    out.mkdir()
    session = AutoSession(model, data, data, "val", 100, 2, False, qat_epochs=1, work=out)
    chosen, table = run_auto(session, -100, "int8", out)
    assert chosen is None
    table = json.loads((out / "auto_candidates.json").read_text())
    assert table["chosen"] is None and table["closest"]["recipe"] in {c["recipe"] for c in table["candidates"]}
    assert [c["recipe"] for c in table["candidates"]][-2:] == ["int16x8", "fp16"]
    # The QAT candidate distilled (the start and 1 epoch, judged on held-out calibration images), converted from its
    # ranges, all int8.
    (qat,) = [c for c in table["candidates"] if c["recipe"] == "int8_qat"]
    assert qat["error"] is None and qat["map50_95"] is not None
    history = json.loads((out / "auto_qat" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1] and history[0]["best"]
