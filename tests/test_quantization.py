"""PTQ on a tiny detector (64 px, 2 classes, 2 calibration images): every recipe, checked by the numbers."""

import numpy as np
import pytest

from tfyolo.errors import ConfigError, DataError
from tfyolo.evaluation.runners import TFLiteRunner
from tfyolo.models.yolo_detector import BOX_OUTPUT, CLASS_OUTPUT
from tfyolo.ops.boxes import pairwise_iou
from tfyolo.ops.decode import decode_predictions
from tfyolo.quantization.converter import convert
from tfyolo.quantization.isolated import ConversionError, check_artifact
from tfyolo.quantization.recipe import Recipe, load_recipe
from tfyolo.quantization.recipes_dir import RECIPES_DIR, builtin_recipe_names, resolve_recipe
from tfyolo.tflite_runtime import inspect_tflite


@pytest.fixture(scope="module")
def trained_tiny(tiny_float_run):
    from tfyolo.models.model_io import load_keras_model

    return load_keras_model(tiny_float_run), tiny_float_run


@pytest.fixture(scope="module")
def calibration(tiny_synthetic):
    from tfyolo.data.calibration_images import load_calibration_images

    images, summary = load_calibration_images(tiny_synthetic, 64, count=2, seed=0)
    return images


@pytest.fixture(scope="module")
def test_images(tiny_synthetic):
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.data.pipeline import evaluation_batches

    dataset = DetectionDataset.from_data_yaml(tiny_synthetic, "val")
    return next(evaluation_batches(dataset, 64, 4))[1]


def test_builtin_recipes_load_strictly():
    from tfyolo.quantization.recipes_dir import default_recipe_names

    assert builtin_recipe_names()[:6] == ["fp32", "fp16", "dynamic", "int8", "int8_int8io", "int16x8"]
    # The recipes that fine-tune first (minutes of training) and TFLiteConverter's int8 run only when named.
    named_only = {"cluster_int8", "prune_int8", "int8_tflite", "int8_tflite_int8io"}
    assert set(builtin_recipe_names()) - set(default_recipe_names()) == named_only
    assert {resolve_recipe(name).quantizer for name in ("int8", "int8_int8io")} == {"ai_edge_quantizer"}
    assert {resolve_recipe(name).quantizer for name in ("int8_tflite", "int8_tflite_int8io")} == {"tflite_converter"}
    assert resolve_recipe("prune_int8").compress == "prune" and resolve_recipe("cluster_int8").clusters == 16
    with pytest.raises(ConfigError, match="compress 'prune' makes an int8 artifact"):
        Recipe(name="x", mode="fp16", compress="prune")
    for name in builtin_recipe_names():
        recipe = resolve_recipe(name)
        assert recipe.name == name and Recipe.from_dict(recipe.to_dict()) == recipe


def test_recipe_errors(tmp_path):
    (tmp_path / "typo.yaml").write_text("name: typo\nmode: int8\nper_chanel: false\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['per_chanel'\]"):
        load_recipe(tmp_path / "typo.yaml")
    with pytest.raises(ConfigError, match="io_type 'int8' needs a full-integer mode"):
        Recipe(name="x", mode="fp16", io_type="int8")
    with pytest.raises(ConfigError, match="mode must be one of"):
        Recipe(name="x", mode="int4")
    with pytest.raises(ConfigError, match="unknown recipe 'int9'"):
        resolve_recipe("int9")


@pytest.mark.parametrize("name", ["fp32", "fp16", "dynamic", "int8", "int8_int8io", "int16x8"])
def test_every_recipe_converts_runs_and_keeps_its_promise(trained_tiny, calibration, test_images, name):
    model, _ = trained_tiny
    recipe = resolve_recipe(name)
    content = convert(model, recipe, calibration if recipe.needs_calibration else None)
    inspection = check_artifact(content, recipe)
    runner = TFLiteRunner(model_content=content, num_threads=1)
    raw = runner.predict_raw(test_images)
    expected = model(test_images, training=False)
    # Compared as users see it, not with an error bound measured on one machine: each anchor's decoded box must
    # stay the same detection by COCO's criterion (IoU >= 0.5 with the float model's box).
    boxes, _ = decode_predictions(raw[BOX_OUTPUT], raw[CLASS_OUTPUT], 64)
    float_boxes, _ = decode_predictions(expected[BOX_OUTPUT].numpy(), expected[CLASS_OUTPUT].numpy(), 64)
    ious = np.concatenate([np.diag(pairwise_iou(a * 64, b * 64)) for a, b in zip(boxes, float_boxes)])
    assert ious.min() >= 0.5
    if name == "fp32":
        for output in (BOX_OUTPUT, CLASS_OUTPUT):
            np.testing.assert_allclose(raw[output], expected[output].numpy(), atol=1e-4)
    if recipe.mode in ("int8", "int16x8"):
        assert inspection["float_compute_ops"] == [] and inspection["full_integer"]
    if name == "int8_int8io":
        assert "float32" not in inspection["tensor_types"]
        assert np.dtype(runner.input_detail["dtype"]) == np.int8
    if name == "int8":
        assert inspection["ops"].get("QUANTIZE", 0) >= 1 and inspection["ops"].get("DEQUANTIZE", 0) == 2
    if name in ("fp32", "fp16", "dynamic"):
        assert not inspection["full_integer"]


@pytest.mark.large  # two conversions for a size ratio that every bench and bundle report shows
def test_int8_file_is_about_a_quarter_of_fp32(trained_tiny, calibration):
    model, _ = trained_tiny
    fp32 = convert(model, resolve_recipe("fp32"))
    int8 = convert(model, resolve_recipe("int8"), calibration)
    assert len(int8) / len(fp32) < 0.30


def test_selective_quantization_keeps_exactly_the_named_layers_in_float(trained_tiny, calibration):
    model, _ = trained_tiny
    recipe = Recipe(name="int8_keep", mode="int8", keep_float=("head0_cls_pred", "head1_cls_pred"))
    content = convert(model, recipe, calibration)
    float_convs = []
    from tfyolo.tflite_runtime import make_interpreter

    interpreter = make_interpreter(model_content=content, xnnpack=False)
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    for op in interpreter._get_ops_details():
        if op["op_name"] == "CONV_2D" and np.dtype(tensors[op["outputs"][0]]["dtype"]) == np.float32:
            float_convs.append(tensors[op["outputs"][0]]["name"])
    assert len(float_convs) == 2
    assert all("head0_cls_pred" in n or "head1_cls_pred" in n for n in float_convs)
    check_artifact(content, recipe)  # keep_float does not promise full integer, so this passes
    with pytest.raises(ConfigError, match="match no layer"):
        convert(model, Recipe(name="bad", mode="int8", keep_float=("no_such_layer",)), calibration)


def test_full_integer_check_catches_float_ops(trained_tiny):
    model, _ = trained_tiny
    float_model = convert(model, resolve_recipe("fp32"))
    with pytest.raises(ConversionError, match="promises integer-only compute"):
        check_artifact(float_model, resolve_recipe("int8"))


def test_calibration_refuses_evaluated_images(tiny_synthetic):
    from tfyolo.data.calibration_images import load_calibration_images
    from tfyolo.data.detection_dataset import DetectionDataset

    train = DetectionDataset.from_data_yaml(tiny_synthetic, "train")
    evaluated = [sample.image_path for sample in train.samples[:3]]
    with pytest.raises(DataError, match="3 calibration image\\(s\\) have the same content as evaluation"):
        load_calibration_images(tiny_synthetic, 64, 4, evaluation_images=evaluated)
    images, summary = load_calibration_images(tiny_synthetic, 64, 4, evaluation_images=evaluated, force=True)
    assert images.shape == (4, 64, 64, 3) and summary["overlap_with_evaluation"] == 3
    assert summary["images_used"] == 4 and 0.0 <= images.min() and images.max() <= 1.0


def test_calibration_refuses_a_renamed_copy_of_an_evaluated_image(tiny_synthetic, tmp_path):
    import shutil

    from tfyolo.data.calibration_images import load_calibration_images
    from tfyolo.data.detection_dataset import DetectionDataset

    val = DetectionDataset.from_data_yaml(tiny_synthetic, "val")
    folder = tmp_path / "calibration"
    folder.mkdir()
    train = DetectionDataset.from_data_yaml(tiny_synthetic, "train")
    for sample in train.samples[:3]:
        shutil.copy(sample.image_path, folder / sample.image_path.name)
    evaluated = [sample.image_path for sample in val.samples]
    images, summary = load_calibration_images(folder, 64, 3, evaluation_images=evaluated)
    assert summary["overlap_with_evaluation"] == 0 and len(images) == 3
    shutil.copy(val.samples[0].image_path, folder / "renamed_copy.png")
    with pytest.raises(DataError, match="1 calibration image\\(s\\) have the same content.*renamed_copy.png"):
        load_calibration_images(folder, 64, 3, evaluation_images=evaluated)


@pytest.mark.large
def test_conversion_runs_in_a_child_process(trained_tiny, calibration):
    from tfyolo.quantization.isolated import convert_isolated

    _, path = trained_tiny
    content = convert_isolated(path, resolve_recipe("int8"), calibration)
    assert inspect_tflite(content)["float_compute_ops"] == []
    with pytest.raises(ConversionError, match="needs calibration images"):
        convert_isolated(path, resolve_recipe("int8"), None)


def test_recipes_dir_is_the_projects_converters_folder():
    assert RECIPES_DIR.name == "converters" and (RECIPES_DIR / "convert.py").is_file()
