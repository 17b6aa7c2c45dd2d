"""Mixed int8 / int16 activations through ai-edge-quantizer: the chosen blocks and only they run 16-bit, every op
stays integer, and the artifact goes through the same checks and evaluation as any other."""

import re

import numpy as np
import pytest

from tfyolo.errors import ConfigError
from tfyolo.quantization.aeq import block_pattern, layer_regex
from tfyolo.quantization.recipe import Recipe

BLOCK = "stage1_cv1a"


def test_layer_patterns_select_whole_blocks_and_nothing_else():
    pattern = re.compile(layer_regex([block_pattern(f"{BLOCK}_conv"), "head_box0_pred"]))
    selected = [
        f"m/{BLOCK}_bn/FusedBatchNormV3;m/{BLOCK}_conv/Conv2D1",  # a fused conv names the BN and the conv
        f"m/{BLOCK}_act/Sigmoid",
        f"m/{BLOCK}_act/mul_1",
        "m/head_box0_pred/BiasAdd",
    ]
    left = ["m/stage1_cv1b_act/mul_1", f"m/x{BLOCK}_act/mul_1", "m/head_box0_pred_other/BiasAdd", BLOCK]
    assert [bool(pattern.match(name)) for name in selected + left] == [True] * 4 + [False] * 4


@pytest.mark.parametrize(
    "values, message",
    [
        ({"int16_layers": ("a_*",)}, "int16_layers needs quantizer: ai_edge_quantizer"),
        ({"quantizer": "ai_edge_quantizer", "mode": "int16x8", "io_type": "int16"}, "it takes mode int8, io_type int8"),
        ({"quantizer": "ai_edge_quantizer", "io_type": "uint8"}, "it takes mode int8, io_type int8 or float32"),
        ({"quantizer": "ai_edge_quantizer", "keep_float": ("a",)}, "and no keep_float"),
        ({"quantizer": "xla"}, "quantizer must be one of"),
    ],
)
def test_mixed_recipes_are_refused_where_they_cannot_hold(values, message):
    with pytest.raises(ConfigError, match=message):
        Recipe(**{"name": "r", "mode": "int8", **values})


def activation_types(content):
    """{tensor name: dtype name} of every op output of a TFLite model, but the requantizing QUANTIZE ops (read
    without XNNPACK, which would fold the ops it runs into DELEGATE nodes)."""
    from tfyolo.tflite_runtime import make_interpreter

    interpreter = make_interpreter(model_content=content, xnnpack=False)
    details = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    return {
        details[index]["name"]: np.dtype(details[index]["dtype"]).name
        for op in interpreter._get_ops_details()
        if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE")
        for index in op["outputs"]
    }


@pytest.fixture(scope="module")
def calibration(tiny_synthetic):
    from tfyolo.data.calibration_images import load_calibration_images

    images, _ = load_calibration_images(tiny_synthetic, 64, 16, 0, [], False)
    return images


def test_the_chosen_block_runs_16_bit_and_the_rest_int8(tiny_float_run, calibration):
    from tfyolo.quantization.artifact import finalize_artifact
    from tfyolo.quantization.isolated import convert_isolated

    recipe = Recipe(
        name="int8_int16act1_int8io",
        mode="int8",
        io_type="int8",
        quantizer="ai_edge_quantizer",
        int16_layers=(block_pattern(f"{BLOCK}_conv"),),
    )
    content = convert_isolated(tiny_float_run, recipe, calibration)
    content, inspection = finalize_artifact(content, recipe, {"names": ["a", "b"], "reg_max": 16})
    assert inspection["full_integer"] and inspection["float_compute_ops"] == []
    types = activation_types(content)
    in_block = {name: dtype for name, dtype in types.items() if f"/{BLOCK}_" in name}
    outside = {name: dtype for name, dtype in types.items() if f"/{BLOCK}_" not in name}
    # conv (fused with its BN), sigmoid, mul: SiLU's two ops and the conv.
    assert len(in_block) == 3 and set(in_block.values()) == {"int16"}, in_block
    assert set(outside.values()) == {"int8"}, sorted(set(outside.values()))


def test_float_io_is_the_int8_io_model_behind_a_quantize_and_a_dequantize(tiny_float_run, calibration):
    """ai-edge-quantizer with float32 I/O: the same integer graph as its int8 I/O artifact, behind one QUANTIZE and
    a DEQUANTIZE per output. Oracle: the int8 I/O model run by hand (the input quantized with its own scale and
    zero point, the outputs dequantized with theirs) gives exactly the float I/O model's outputs."""
    from tfyolo.quantization.aeq import with_float_boundary
    from tfyolo.quantization.artifact import finalize_artifact
    from tfyolo.quantization.isolated import convert_isolated
    from tfyolo.tflite_runtime import make_interpreter

    recipes = {
        io: Recipe(name=f"int8_{io}", mode="int8", io_type=io, quantizer="ai_edge_quantizer")
        for io in ("int8", "float32")
    }
    integer = convert_isolated(tiny_float_run, recipes["int8"], calibration)
    # aeq.quantize gives a float32 recipe exactly this boundary, and a job derives its `int8` artifact this way.
    contents = {"int8": integer, "float32": with_float_boundary(integer)}
    _, inspection = finalize_artifact(contents["float32"], recipes["float32"], {"names": ["a", "b"], "reg_max": 16})
    assert inspection["full_integer"] and set(inspection["io_types"].values()) == {"float32"}
    image = calibration[:1].astype(np.float32)
    results = {}
    for io, content in contents.items():
        interpreter = make_interpreter(model_content=content, xnnpack=False)
        (detail,) = interpreter.get_input_details()
        value = image
        if io == "int8":
            scale, zero_point = detail["quantization"]
            value = np.clip(np.round(image / scale) + zero_point, -128, 127).astype(np.int8)
        interpreter.set_tensor(detail["index"], value)
        interpreter.invoke()
        results[io] = {}
        for output in interpreter.get_output_details():
            values = interpreter.get_tensor(output["index"]).astype(np.float32)
            if io == "int8":
                scale, zero_point = output["quantization"]
                values = (values - zero_point) * scale
            results[io][output["name"]] = values
    assert sorted(results["int8"]) == sorted(results["float32"])
    for name, values in results["int8"].items():
        np.testing.assert_allclose(results["float32"][name], values, rtol=0, atol=1e-6)


@pytest.mark.large
def test_patterns_that_match_no_layer_are_an_error(tiny_float_run, calibration):
    from tfyolo.quantization.isolated import ConversionError, convert_isolated

    recipe = Recipe(name="typo", mode="int8", io_type="int8", quantizer="ai_edge_quantizer", int16_layers=("stage9_*",))
    with pytest.raises(ConversionError, match=r"int16_layers \['stage9_\*'\] match no layer of this model"):
        convert_isolated(tiny_float_run, recipe, calibration)


@pytest.mark.large
def test_range_statistics_against_the_float_outputs(tiny_float_run, calibration):
    """ai-edge-quantizer averages each tensor's per-image minima and maxima; `range_statistic: min_max` keeps the
    extremes everywhere and `outputs_mse` (the DFL families' default) on the prediction outputs only. Oracle: the
    float Keras model's outputs on the same calibration images. With the extremes, an int8 output's top ((127 -
    zero point) x scale) must reach the float maximum and the box output's bottom the float minimum (within one
    step; a range holds zero); inside the network `outputs_mse`'s ranges are searched within the moving average's,
    which lie within the extremes, so no tensor's step is wider than with the extremes and some step is narrower."""
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.quantization.isolated import convert_isolated
    from tfyolo.tflite_runtime import make_interpreter

    outputs = load_keras_model(tiny_float_run)(calibration, training=False)
    float_ranges = {name: (float(outputs[name].numpy().min()), float(outputs[name].numpy().max())) for name in outputs}
    ranges, inner_steps = {}, {}
    for statistic in ("min_max", "outputs_mse"):
        recipe = Recipe(
            name=f"int8_aeq_{statistic}_int8io",
            mode="int8",
            io_type="int8",
            quantizer="ai_edge_quantizer",
            range_statistic=statistic,
        )
        statistic = recipe.range_statistic
        interpreter = make_interpreter(model_content=convert_isolated(tiny_float_run, recipe, calibration))
        ranges[statistic] = {}
        for detail in interpreter.get_output_details():
            name = next(name for name in outputs if name in detail["name"])
            scale, zero_point = detail["quantization"]
            ranges[statistic][name] = (scale, (-128 - zero_point) * scale, (127 - zero_point) * scale)
        output_indices = {detail["index"] for detail in interpreter.get_output_details()}
        inner_steps[statistic] = {
            detail["name"]: detail["quantization"][0]
            for detail in interpreter.get_tensor_details()
            if detail["dtype"] == np.int8 and "stage" in detail["name"] and detail["index"] not in output_indices
        }
    for statistic in ("min_max", "outputs_mse"):
        (_, _, class_top), (box_step, box_bottom, box_top) = (
            ranges[statistic]["class_logits"],
            ranges[statistic]["box_distribution"],
        )
        class_step = ranges[statistic]["class_logits"][0]
        assert class_top == pytest.approx(max(float_ranges["class_logits"][1], 0.0), abs=class_step)
        assert box_top == pytest.approx(max(float_ranges["box_distribution"][1], 0.0), abs=box_step)
        assert box_bottom == pytest.approx(min(float_ranges["box_distribution"][0], 0.0), abs=box_step)
    # Where scales differ ai-edge-quantizer inserts its own requantize tensors; the layers' tensors are in both.
    shared = inner_steps["outputs_mse"].keys() & inner_steps["min_max"].keys()
    assert len(shared) >= 20
    widths = [(inner_steps["outputs_mse"][name], inner_steps["min_max"][name]) for name in shared]
    assert all(average <= extreme * (1 + 1e-6) for average, extreme in widths)
    assert any(average < extreme * 0.99 for average, extreme in widths)
    with pytest.raises(ConfigError, match="range_statistic chooses how ai-edge-quantizer summarizes"):
        Recipe(name="r", mode="int8", range_statistic="min_max")


def test_outputs_min_max_takes_the_extremes_on_the_prediction_tensors_only(tiny_float_run):
    """`choose_ranges` on a made-up calibration of the tiny model's fp32 TFLite (every activation: average [-1, 1],
    extremes [-2, 2]). Oracle: the tensors named after the prediction layers, their reshapes and the two outputs
    (`head*_box_*` / `box_distribution`, `head*_cls_*` / `class_logits`), found by name, not by the graph walk the
    code does. The box tensors get both extremes, the class tensors the top one, every other tensor the average."""
    from tensorflow.lite.tools import flatbuffer_utils

    from tfyolo.quantization.aeq import choose_ranges
    from tfyolo.quantization.head_tensors import prediction_tensor_names
    from tfyolo.quantization.isolated import convert_isolated

    fp32 = convert_isolated(tiny_float_run, Recipe(name="fp32", mode="fp32"), None)
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(fp32))
    subgraph = model.subgraphs[0]
    # Calibration covers activations (op outputs), not the weights' constants.
    names = [subgraph.tensors[index].name.decode() for op in subgraph.operators for index in op.outputs]
    calibration = {
        name: {
            "min": np.array([-1.0]),
            "max": np.array([1.0]),
            "extreme_min": np.array([-2.0]),
            "extreme_max": np.array([2.0]),
        }
        for name in names
    }
    boxes = {name for name in names if re.search(r"(^|/)(head\d+_box_[a-z]+/|box_distribution$)", name)}
    classes = {name for name in names if re.search(r"(^|/)(head\d+_cls_[a-z]+/|class_logits$)", name)}
    assert len(boxes) >= 4 and len(classes) >= 4
    chosen = choose_ranges(calibration, "outputs_min_max", prediction_tensor_names(fp32))
    ranges = {name: (float(entry["min"][0]), float(entry["max"][0])) for name, entry in chosen.items()}
    assert {name for name, span in ranges.items() if span == (-2.0, 2.0)} == boxes
    assert {name for name, span in ranges.items() if span == (-1.0, 2.0)} == classes
    assert all(span == (-1.0, 1.0) for name, span in ranges.items() if name not in boxes | classes)
    for statistic, expected in (("min_max", (-2.0, 2.0)), ("moving_average", (-1.0, 1.0))):
        chosen = choose_ranges(calibration, statistic)
        assert all((float(entry["min"][0]), float(entry["max"][0])) == expected for entry in chosen.values())
        assert all(set(entry) == {"min", "max"} for entry in chosen.values())


def test_outputs_mean_weighs_every_image_the_same():
    """Four images' ranges of one inner tensor and one box output, folded by the calibrator's update function
    (`both_statistics`, the first summary stored as it comes). Hand arithmetic: the plain mean of the maxima
    (8 + 1 + 1 + 1) / 4 = 2.75 and minima (-4 - 1 - 1 - 1) / 4 = -1.75; ai-edge-quantizer's moving average
    (0.95 x old + 0.05 x new, three times) keeps the first image's 8 at 8 x 0.95^3 + 1 x (1 - 0.95^3) = 6.99...;
    the box output keeps its extremes [-4, 8] under both statistics."""
    from tfyolo.quantization.aeq import both_statistics, choose_ranges

    images = [(-4.0, 8.0), (-1.0, 1.0), (-1.0, 1.0), (-1.0, 1.0)]
    summaries = {}
    for name in ("inner", "boxes"):
        summary = {"min": np.array([images[0][0]]), "max": np.array([images[0][1]])}
        for low, high in images[1:]:
            summary = both_statistics(summary, {"min": np.array([low]), "max": np.array([high])})
        summaries[name] = summary
    predictions = {"box_distribution": {"boxes"}}
    mean = choose_ranges(summaries, "outputs_mean", predictions)
    average = choose_ranges(summaries, "outputs_min_max", predictions)
    assert float(mean["inner"]["min"][0]) == pytest.approx(-1.75)
    assert float(mean["inner"]["max"][0]) == pytest.approx(2.75)
    assert float(average["inner"]["max"][0]) == pytest.approx(8 * 0.95**3 + (1 - 0.95**3))
    assert float(average["inner"]["min"][0]) == pytest.approx(-4 * 0.95**3 - (1 - 0.95**3))
    for chosen in (mean, average):
        assert (float(chosen["boxes"]["min"][0]), float(chosen["boxes"]["max"][0])) == (-4.0, 8.0)


@pytest.mark.parametrize(
    "value, expected",
    [
        (
            "percentile",
            r"'range_statistic' must be one of \('outputs_mse', 'outputs_min_max', 'moving_average', 'min_max', "
            r"'outputs_mean', 'outputs_percentile'\) or null",
        ),
        (["min_max"], r"'range_statistic' must be one of .* received list"),
        (7, r"'range_statistic' must be one of .* received int 7"),
    ],
)
def test_a_range_statistic_from_a_recipe_file_is_checked_before_any_work(value, expected):
    """A recipe file's range_statistic is user input: anything but a named statistic (or null) is one line naming the
    field, what it must be and what was received; TFLiteConverter, which keeps the extremes, takes none."""
    from tfyolo.models.detector_metadata import family_of

    base = dict(name="r", mode="int8", io_type="int8", quantizer="ai_edge_quantizer")
    with pytest.raises(ConfigError, match=expected):
        Recipe.from_dict({**base, "range_statistic": value}, source="r.yaml")
    with pytest.raises(ConfigError, match="delete that line"):
        Recipe.from_dict({"name": "r", "mode": "int8", "range_statistic": "moving_average"}, source="r.yaml")
    # Left to the model's family (the statistic measured best for it), filled in before conversion.
    assert Recipe.from_dict(base, source="r.yaml").range_statistic is None
    chosen = {
        family: Recipe.from_dict(base).for_family(family_of({"family": family})).range_statistic
        for family in ("yolov8", "yolo26", None)
    }
    assert chosen == {"yolov8": "outputs_mse", "yolo26": "outputs_min_max", None: "outputs_mse"}
    named = Recipe.from_dict({**base, "range_statistic": "min_max"})
    assert named.for_family(family_of({"family": "yolo26"})).range_statistic == "min_max"
    # A family read from a hostile file's metadata is refused in one line, not a TypeError on an unhashable key.
    with pytest.raises(ConfigError, match=r"family must be one of .* received \['yolo26'\]"):
        family_of({"family": ["yolo26"]})
    assert Recipe.from_dict({"name": "r", "mode": "int8"}, source="r.yaml").range_statistic is None


@pytest.mark.large  # 22 s; what it saves is time: each artifact's own promise is checked by the fast suite's jobs
def test_int8_and_int8_int8io_share_one_conversion_in_a_job(tiny_float_run, calibration, monkeypatch):
    """Within a job the ai-edge-quantizer int8 recipes differ only in their boundary: the calibration pass (most of
    a conversion's time) runs once, and each artifact still holds its own recipe's promise."""
    from tfyolo.jobs import artifact_pipeline
    from tfyolo.metadata import find_model_metadata

    calls = []
    real = artifact_pipeline.convert_isolated

    def counted(source, recipe, images):
        calls.append(recipe.io_type)
        return real(source, recipe, images)

    monkeypatch.setattr(artifact_pipeline, "convert_isolated", counted)
    float_model = artifact_pipeline.FloatModel(str(tiny_float_run), find_model_metadata(tiny_float_run), 64, 2)
    converted, io_types = {}, {}
    for io in ("float32", "int8"):
        recipe = Recipe(name=f"int8_{io}", mode="int8", io_type=io, quantizer="ai_edge_quantizer")
        _, facts = artifact_pipeline.make_artifact(float_model, recipe, images=calibration, converted=converted)
        io_types[io] = set(facts["io_types"].values())
    assert calls == ["int8"]
    assert io_types == {"float32": {"float32"}, "int8": {"int8"}}
