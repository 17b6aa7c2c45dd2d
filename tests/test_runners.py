import numpy as np
import pytest

from tfyolo.compat import keras, tf
from tfyolo.errors import DataError, ModelError
from tfyolo.evaluation.runners import TFLiteRunner, dequantize, quantize
from tfyolo.models.yolo_detector import BOX_OUTPUT, CLASS_OUTPUT


@pytest.mark.parametrize(
    "dtype, scale, zero_point", [(np.int8, 1 / 255, -128), (np.uint8, 0.05, 10), (np.int16, 0.001, 0)]
)
def test_quantize_dequantize_round_trip(dtype, scale, zero_point):
    detail = {"dtype": dtype, "quantization": (scale, zero_point)}
    values = np.linspace(0, 1, 50, dtype=np.float32)
    quantized = quantize(values, detail)
    assert quantized.dtype == dtype
    # Round to nearest: the error is at most half a step.
    assert np.abs(dequantize(quantized, detail) - values).max() <= scale / 2 + 1e-7
    # Saturation instead of wrap-around.
    assert quantize(np.array([1e6], np.float32), detail)[0] == np.iinfo(dtype).max


def test_float_details_pass_through():
    detail = {"dtype": np.float32, "quantization": (0.0, 0)}
    values = np.array([0.25, -3.0], np.float32)
    np.testing.assert_array_equal(dequantize(quantize(values, detail), detail), values)


def _to_tflite(model, int8_input=False, shape=(1, 64, 64, 3)):
    """A plain TFLiteConverter export: no signature, no metadata, outputs named after the graph's tensors."""
    function = tf.function(lambda images: model(images))
    concrete = function.get_concrete_function(tf.TensorSpec(shape, tf.float32, name="images"))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], function)
    if int8_input:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [np.random.default_rng(i).uniform(0, 1, shape).astype(np.float32)] for i in range(2)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
    return converter.convert()


def ultralytics_like_model(num_classes=2, box=(0.5, 0.5, 0.2, 0.4), channels_first=False, widest=None):
    """A model with Ultralytics' export layout: one (1, 4 + nc, 84) output for a 64px input; every anchor holds
    `box` (cx, cy, w, h) and the (already sigmoid) scores sigmoid(-1), sigmoid(2). `widest` sets anchor 5's width
    (a box wider than the input); `channels_first` takes a (1, 3, 64, 64) input, as Ultralytics' LiteRT export."""
    images = keras.Input((3, 64, 64) if channels_first else (64, 64, 3), batch_size=1)
    pixels = keras.layers.Permute((2, 3, 1))(images) if channels_first else images
    pooled = keras.layers.GlobalAveragePooling2D()(pixels)
    dense = keras.layers.Dense(84 * (4 + num_classes))
    rows = keras.layers.Reshape((84, 4 + num_classes))(dense(pooled))
    model = keras.Model(images, keras.layers.Permute((2, 1))(rows))
    row = np.r_[box, 1 / (1 + np.exp(1.0)), 1 / (1 + np.exp(-2.0))][: 4 + num_classes]
    bias = np.tile(row, (84, 1))
    if widest is not None:
        bias[5, 2] = widest
    dense.set_weights([np.zeros((3, 84 * (4 + num_classes))), bias.ravel()])
    return model


def test_ultralytics_layout_is_detected_and_decoded(tmp_path):
    path = tmp_path / "yolov8_export.tflite"
    path.write_bytes(_to_tflite(ultralytics_like_model()))
    runner = TFLiteRunner(path, layout="auto")
    assert runner.layout == "ultralytics" and runner.num_classes == 2
    boxes, scores = runner.predict(np.zeros((2, 64, 64, 3), np.float32))
    np.testing.assert_allclose(boxes[1, 7], [0.4, 0.3, 0.6, 0.7], atol=1e-6)
    np.testing.assert_allclose(scores[0, 0], 1 / (1 + np.exp([1.0, -2.0])), atol=1e-6)
    with pytest.raises(ModelError, match="--layout tfyolo was asked for"):
        TFLiteRunner(path, layout="tfyolo")


def test_int8_input_model_is_fed_float(tmp_path):
    path = tmp_path / "int8_in.tflite"
    path.write_bytes(_to_tflite(ultralytics_like_model(), int8_input=True))
    runner = TFLiteRunner(path)
    assert np.dtype(runner.input_detail["dtype"]) == np.int8
    boxes, _ = runner.predict(np.full((1, 64, 64, 3), 0.5, np.float32))
    np.testing.assert_allclose(boxes[0, 0], [0.4, 0.3, 0.6, 0.7], atol=0.02)


@pytest.mark.parametrize("channels_first", [False, True], ids=["NHWC", "NCHW"])
def test_box_units_are_decided_once_per_model_not_per_batch(tmp_path, channels_first):
    shape = (1, 3, 64, 64) if channels_first else (1, 64, 64, 3)
    # Normalized boxes with one anchor's box 2.03 inputs wide (measured on a real export with random input):
    # a per-batch "max above 2 means pixels" rule would divide everything by 64.
    normalized = tmp_path / "normalized.tflite"
    normalized.write_bytes(_to_tflite(ultralytics_like_model(widest=2.03, channels_first=channels_first), shape=shape))
    # The same boxes in pixels of the 64 px input.
    pixels = tmp_path / "pixels.tflite"
    pixel_box = (32.0, 32.0, 12.8, 25.6)
    pixels.write_bytes(_to_tflite(ultralytics_like_model(box=pixel_box, channels_first=channels_first), shape=shape))
    images = np.zeros((2, 64, 64, 3), np.float32)
    for path, expected_normalized in ((normalized, True), (pixels, False)):
        runner = TFLiteRunner(path)
        assert runner.channels_first == channels_first and runner.input_size == 64
        assert runner.normalized_boxes == expected_normalized
        boxes, _ = runner.predict(images)
        np.testing.assert_allclose(boxes[1, 7], [0.4, 0.3, 0.6, 0.7], atol=1e-6)


def test_tfyolo_outputs_matched_by_signature_then_metadata_never_by_width(tiny_model, tmp_path):
    from tfyolo.metadata import embed_metadata
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.recipe import Recipe

    images = np.random.default_rng(1).uniform(0, 1, (1, 64, 64, 3)).astype(np.float32)
    expected = tiny_model(images)
    named = tmp_path / "named.tflite"
    named.write_bytes(convert(tiny_model, Recipe(name="fp32", mode="fp32")))
    unnamed = tmp_path / "unnamed.tflite"
    unnamed.write_bytes(_to_tflite(tiny_model))
    with_metadata = tmp_path / "unnamed_with_metadata.tflite"
    with_metadata.write_bytes(embed_metadata(unnamed.read_bytes(), {"names": {"0": "a", "1": "b"}, "reg_max": 16}))
    for path in (named, with_metadata):
        runner = TFLiteRunner(path)
        assert runner.layout == "tfyolo" and runner.num_classes == 2 and runner.reg_max == 16
        raw = runner.predict_raw(images)
        for name in (BOX_OUTPUT, CLASS_OUTPUT):
            np.testing.assert_allclose(raw[name], expected[name].numpy(), atol=1e-4)
    with pytest.raises(ModelError, match="carry no names .* no embedded metadata"):
        TFLiteRunner(unnamed)


def test_not_a_detector_and_bad_inputs(tmp_path):
    images = keras.Input((64, 64, 3), batch_size=1)
    classifier = keras.Model(images, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(images)))
    (tmp_path / "classifier.tflite").write_bytes(_to_tflite(classifier))
    with pytest.raises(ModelError, match="not a detector this tool understands"):
        TFLiteRunner(tmp_path / "classifier.tflite")
    (tmp_path / "junk.tflite").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="junk.tflite: not a valid TFLite model"):
        TFLiteRunner(tmp_path / "junk.tflite")


def test_input_size_that_does_not_fit(tiny_model, tmp_path):
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.recipe import Recipe

    path = tmp_path / "tiny.tflite"
    path.write_bytes(convert(tiny_model, Recipe(name="fp32", mode="fp32")))
    with pytest.raises(ModelError, match="takes 64x64 inputs, received 96x96"):
        TFLiteRunner(path).predict(np.zeros((1, 96, 96, 3), np.float32))


def test_class_count_mismatch_is_a_clear_error(tiny_model, tiny_synthetic):
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.evaluation.evaluator import evaluate
    from tfyolo.evaluation.runners import KerasRunner
    from tfyolo.models.model_config import ModelConfig
    from tfyolo.models.yolo_detector import build_yolo_detector

    dataset = DetectionDataset.from_data_yaml(tiny_synthetic, "val")
    three = build_yolo_detector(ModelConfig(num_classes=3, input_size=64))
    with pytest.raises(DataError, match="has 2 classes but the model predicts 3"):
        evaluate(KerasRunner(three), dataset)


@pytest.mark.large
@pytest.mark.parametrize("family", ["yolov8", "yolo26"])
def test_saved_model_runner_matches_keras(tiny_model, family, tmp_path):
    """The SavedModel runner reads the box bins off its box output as the Keras runner does: 16 for YOLOv8, 1 for
    YOLO26 (plain distances)."""
    from tfyolo.evaluation.runners import KerasRunner
    from tfyolo.export import export_saved_model
    from tfyolo.jobs.model_runner import open_runner
    from tfyolo.models.model_config import ModelConfig
    from tfyolo.models.yolo_detector import build_yolo_detector

    model = tiny_model if family == "yolov8" else build_yolo_detector(ModelConfig(2, family=family, input_size=64))
    export_saved_model(model, tmp_path / "saved")
    runner = open_runner(tmp_path / "saved")
    assert runner.input_size == 64 and runner.num_classes == 2
    assert runner.reg_max == {"yolov8": 16, "yolo26": 1}[family]
    images = np.random.default_rng(3).uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
    boxes, scores = runner.predict(images)
    expected_boxes, expected_scores = KerasRunner(model).predict(images)
    np.testing.assert_allclose(boxes, expected_boxes, atol=1e-5)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-6)
