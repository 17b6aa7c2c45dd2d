import numpy as np
import pytest

from tfyolo.compat import keras
from tfyolo.models.model_config import ModelConfig
from tfyolo.models.yolo_detector import BOX_OUTPUT, CLASS_OUTPUT, build_yolo_detector


def trainable_parameters(model):
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


@pytest.mark.parametrize("input_size, anchors", [(64, 64 + 16 + 4), (128, 256 + 64 + 16)])
def test_output_shapes(tiny_model, input_size, anchors):
    model = tiny_model if input_size == 64 else build_yolo_detector(ModelConfig(num_classes=2, input_size=input_size))
    outputs = model(np.zeros((2, input_size, input_size, 3), np.float32))
    assert outputs[BOX_OUTPUT].shape == (2, anchors, 64)
    assert outputs[CLASS_OUTPUT].shape == (2, anchors, 2)


# Golden trainable parameter counts at 80 classes. Ultralytics reports YOLOv8n 3,157,200 / s 11,166,560 /
# m 25,902,640: each is ours + 16, the fixed weights of its DFL 1x1 conv, which here is arithmetic in
# `tfyolo.ops.decode` instead of a layer.
@pytest.mark.parametrize(
    "scale, trainable, total",
    [
        ("n", 3_157_184, 3_167_776),
        ("s", 11_166_544, 11_186_576),
        ("m", 25_902_624, 25_935_744),
    ],
)
def test_parameter_count_golden(scale, trainable, total):
    model = build_yolo_detector(ModelConfig(num_classes=80, scale=scale, input_size=64))
    assert trainable_parameters(model) == trainable
    assert model.count_params() == total


def test_parameter_count_does_not_depend_on_activation_or_size(tiny_model):
    counts = {tiny_model.count_params()}
    counts |= {
        build_yolo_detector(ModelConfig(num_classes=2, activation=activation, input_size=64)).count_params()
        for activation in ("relu", "relu6", "hard_swish")
    }
    counts.add(build_yolo_detector(ModelConfig(num_classes=2, input_size=96)).count_params())
    assert len(counts) == 1


def test_graph_is_flat_plain_keras(tiny_model):
    # tfmot clones the model layer by layer: TFOpLambda, Lambda and nested models break that.
    kinds = {type(layer).__name__ for layer in tiny_model.layers}
    assert not kinds & {"TFOpLambda", "Lambda", "Functional", "Model", "Sequential"}
    assert kinds <= {
        "InputLayer",
        "Conv2D",
        "BatchNormalization",
        "Activation",
        "Add",
        "Concatenate",
        "MaxPooling2D",
        "UpSampling2D",
        "Reshape",
    }


def test_box_and_class_outputs_stay_separate(tiny_model):
    assert set(tiny_model.output) == {BOX_OUTPUT, CLASS_OUTPUT}


def test_get_config_round_trip(tiny_model):
    clone = keras.Model.from_config(tiny_model.get_config())
    clone.set_weights(tiny_model.get_weights())
    images = np.random.default_rng(0).uniform(0, 1, (1, 64, 64, 3)).astype(np.float32)
    expected, actual = tiny_model(images), clone(images)
    for name in (BOX_OUTPUT, CLASS_OUTPUT):
        np.testing.assert_allclose(actual[name], expected[name], atol=1e-5)


def test_save_and_load_keras_file(tmp_path):
    from tfyolo.models.model_io import load_keras_model, save_model_atomic

    model = build_yolo_detector(ModelConfig(num_classes=2, activation="hard_swish", input_size=64))
    save_model_atomic(model, tmp_path / "m.keras")
    loaded = load_keras_model(tmp_path / "m.keras")
    images = np.full((1, 64, 64, 3), 0.5, np.float32)
    np.testing.assert_allclose(loaded(images)[CLASS_OUTPUT], model(images)[CLASS_OUTPUT], atol=1e-6)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_loading_something_else_is_a_clear_error(tmp_path):
    from tfyolo.errors import ModelError
    from tfyolo.models.model_io import load_keras_model

    (tmp_path / "junk.keras").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="junk.keras: not a Keras model file"):
        load_keras_model(tmp_path / "junk.keras")
    images = keras.Input((8, 8, 3))
    keras.Model(images, keras.layers.Conv2D(2, 1)(images)).save(tmp_path / "conv.keras")
    with pytest.raises(ModelError, match="not a tfyolo detector"):
        load_keras_model(tmp_path / "conv.keras")
    # A kind of model tfyolo never builds is refused before Keras reads it.
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(tmp_path / "dense.keras")
    with pytest.raises(ModelError, match="refused before loading: layer 'sequential' is a 'Sequential'"):
        load_keras_model(tmp_path / "dense.keras")


@pytest.mark.large
def test_quantize_model_accepts_the_n_detector():
    import tensorflow_model_optimization as tfmot

    model = build_yolo_detector(ModelConfig(num_classes=2, input_size=64))
    quantized = tfmot.quantization.keras.quantize_model(model)
    outputs = quantized(np.zeros((1, 64, 64, 3), np.float32))
    assert outputs[CLASS_OUTPUT].shape == (1, 84, 2)
    wrapped = [layer for layer in quantized.layers if type(layer).__name__ == "QuantizeWrapperV2"]
    assert len(wrapped) > 100


def test_resize_detector_keeps_weights(tiny_model):
    from tfyolo.models.resize import resize_detector

    bigger = resize_detector(tiny_model, ModelConfig(num_classes=2, input_size=64), 96)
    assert bigger.output_shape[CLASS_OUTPUT] == (None, 144 + 36 + 9, 2)
    for small, large in zip(tiny_model.get_weights(), bigger.get_weights()):
        np.testing.assert_array_equal(small, large)
