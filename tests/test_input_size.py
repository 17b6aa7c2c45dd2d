"""A recipe's input_size: the same weights converted at another input side (what an NPU or MCU team ships)."""

import numpy as np
import pytest

from tfyolo.errors import ConfigError
from tfyolo.quantization.recipe import Recipe


def _constants(content):
    """The convolution kernels stored in a .tflite (4-D float tensors with data in the flatbuffer), sorted bytes."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    kernels = []
    for tensor in model.subgraphs[0].tensors:
        data = model.buffers[tensor.buffer].data
        if data is not None and len(tensor.shape) == 4 and tensor.type == schema.TensorType.FLOAT32:
            kernels.append(bytes(np.asarray(data, dtype=np.uint8)))
    return sorted(kernels)


@pytest.mark.large
def test_the_same_weights_are_converted_at_the_recipe_s_input_size(tiny_float_run):
    from tfyolo.quantization.isolated import convert_isolated
    from tfyolo.tflite_runtime import make_interpreter

    own = convert_isolated(tiny_float_run, Recipe(name="fp32", mode="fp32"))
    smaller = convert_isolated(tiny_float_run, Recipe(name="fp32_128px", mode="fp32", input_size=128))
    interpreter = make_interpreter(model_content=smaller)
    assert tuple(interpreter.get_input_details()[0]["shape"]) == (1, 128, 128, 3)
    # Anchors at strides 8, 16, 32 of a 128 px input: 256 + 64 + 16.
    assert {tuple(detail["shape"][:2]) for detail in interpreter.get_output_details()} == {(1, 336)}
    # The oracle for "same weights": the 64 px file's constants, byte for byte.
    assert _constants(smaller) == _constants(own) and len(_constants(own)) > 10


@pytest.mark.large
def test_int8_at_another_input_size_calibrates_on_the_resized_images(tiny_float_run, tiny_synthetic):
    from tfyolo.data.calibration_images import load_calibration_images
    from tfyolo.quantization.isolated import convert_isolated
    from tfyolo.tflite_runtime import inspect_tflite, make_interpreter

    images, _ = load_calibration_images(tiny_synthetic, 64, 8)
    int8 = convert_isolated(tiny_float_run, Recipe(name="int8_32px", mode="int8", input_size=32), images)
    assert not inspect_tflite(int8)["float_compute_ops"]
    assert tuple(make_interpreter(model_content=int8).get_input_details()[0]["shape"]) == (1, 32, 32, 3)


def test_calibration_images_resized_are_the_letterbox_at_the_new_size(rng):
    from tfyolo.data.images import letterbox, resize_square_inputs, to_model_input

    image = rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)
    # A smooth image, so that interpolation differences stay small: the oracle is the letterbox at 32 itself.
    image = np.repeat(np.repeat(image[::8, ::8], 8, axis=0), 8, axis=1)
    at_64 = to_model_input(letterbox(image, 64)[0][None])
    at_32 = to_model_input(letterbox(image, 32)[0][None])
    resized = resize_square_inputs(at_64, 32)
    assert resized.shape == at_32.shape and resized.dtype == at_32.dtype
    # Rows inside the image on both (the pad band's edge may fall a row apart): within a few gray levels.
    assert np.abs(resized[0, 10:22] - at_32[0, 10:22]).mean() < 8 / 255


def test_input_size_is_checked_and_needs_the_model_file(tiny_model):
    from tfyolo.quantization.converter import convert

    with pytest.raises(ConfigError, match="input_size.*multiple of 32"):
        Recipe.from_dict({"name": "r", "mode": "fp32", "input_size": 100})
    with pytest.raises(ConfigError, match="input_size rebuilds the model for a plain conversion"):
        Recipe(name="r", mode="int8", compress="cluster", input_size=32)
    with pytest.raises(ConfigError, match="convert the model file"):
        convert(tiny_model, Recipe(name="r", mode="fp32", input_size=32))


@pytest.mark.large
def test_a_recipe_job_scores_an_artifact_at_another_size_against_the_float_model(
    tiny_float_run, tiny_synthetic, tmp_path
):
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec

    recipe = tmp_path / "fp32_128px.yaml"
    recipe.write_text(Recipe(name="fp32_128px", mode="fp32", input_size=128).to_yaml())
    spec = JobSpec(model=str(tiny_float_run), recipes=("fp32", str(recipe)), data=str(tiny_synthetic))
    rows = {row["recipe"]: row for row in run_job(spec, tmp_path / "out").rows}
    resized = rows["fp32_128px"]
    assert resized["note"] == "at 128 px, against the float model at 64 px" and resized["error"] is None
    assert resized["delta_map50_95"] == pytest.approx(100 * (resized["map50_95"] - rows["float"]["map50_95"]))
    assert rows["fp32"]["delta_map50_95"] == pytest.approx(0, abs=0.01)
