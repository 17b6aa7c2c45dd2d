"""Every Ultralytics TFLite form that tfyolo-eval accepts decodes to the right boxes, or is refused in one line.

Genuine exports from ../shared/weights (skipped in a bare clone) are checked against oracles that share no code with
the runner: ONNX Runtime's outputs in pixels (golden_io.npz) for the LiteRT files, the dataset's own labels for the
legacy onnx2tf COCO files. Small models built here exercise the box-unit rule and the refusal in a bare clone.
"""

import numpy as np
import pytest

from tests.conftest import SHARED, shared_dataset

WEIGHTS = SHARED / "weights"


def shared_file(relative):
    path = WEIGHTS / relative
    if not path.is_file():
        pytest.skip(f"needs ../shared/weights/{relative} beside the project (present in CI)")
    return path


def cxcywh_to_xyxy(boxes):
    return np.concatenate([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2], -1)


def iou(a, b):
    overlap = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    return overlap / ((a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod() - overlap)


# LiteRT (`format='tflite'`, Ultralytics 8.4.190): NCHW input, float I/O. One-to-many boxes are fractions; the
# end-to-end one's are pixels. (file, boxes are fractions, tolerance in pixels on the confident anchors' median)
LITERT = {
    "yolov8_fp32": ("ultralytics_yolov8n_pennfudan/yolov8n_pennfudan_320_fp32.tflite", True, 1e-3),
    "yolo11_fp32": ("ultralytics_yolo11n_pennfudan/yolo11n_pennfudan_320_fp32.tflite", True, 1e-3),
    "yolo26_fp32": ("ultralytics_yolo26n_pennfudan/yolo26n_pennfudan_320_fp32.tflite", True, 1e-3),
    # Static int8 (weights and activations): SOURCE.md measures a mean box error of 0.95-1.8 px against ONNX.
    "yolov8_int8": ("ultralytics_yolov8n_pennfudan/yolov8n_pennfudan_320_int8.tflite", True, 2.0),
    "yolo11_int8": ("ultralytics_yolo11n_pennfudan/yolo11n_pennfudan_320_int8.tflite", True, 2.0),
    "yolo26_int8": ("ultralytics_yolo26n_pennfudan/yolo26n_pennfudan_320_int8.tflite", True, 2.0),
    "yolo26_fp32_end2end": ("ultralytics_yolo26n_pennfudan/yolo26n_pennfudan_320_fp32_end2end.tflite", False, 1e-3),
}


@pytest.mark.parametrize("form", list(LITERT))
def test_litert_export_decodes_to_onnx_runtime_s_pixels(form):
    from tfyolo.evaluation.runners import TFLiteRunner

    relative, fractions, tolerance = LITERT[form]
    runner = TFLiteRunner(shared_file(relative))
    assert runner.channels_first and runner.normalized_boxes == fractions
    golden = np.load(WEIGHTS / relative.split("/")[0] / "golden_io.npz")
    boxes, scores = runner.predict(golden["images"])
    if runner.layout == "ultralytics_end2end":
        expected_boxes, expected_scores = golden["output0"][..., :4], golden["output0"][..., 4]
        found_scores = scores.max(-1)
    else:
        # YOLO26's golden file holds the end-to-end ONNX as output0 and the one-to-many one beside it.
        rows = np.transpose(golden.get("output0_one2many", golden["output0"]), (0, 2, 1))
        expected_boxes, expected_scores = cxcywh_to_xyxy(rows[..., :4]), rows[..., 4]
        found_scores = scores[..., 0]
    confident = expected_scores > 0.25
    assert confident.sum() >= 2
    errors = np.abs(boxes * 320 - expected_boxes)[confident]
    assert np.median(errors) <= tolerance, f"median box error {np.median(errors):.4g} px"
    assert np.abs(found_scores - expected_scores)[confident].max() < 0.3


# Legacy onnx2tf exports (NHWC, boxes as fractions of the input) of COCO models at 640: (file, layout).
LEGACY = {
    "yolov8_dynamic_range": (
        "ultralytics_yolov8n_coco_dequantized/ultralytics_exports/yolov8n_int8.tflite",
        "ultralytics",
    ),
    "yolov8_full_integer_quant": (
        "ultralytics_yolov8n_coco_dequantized/ultralytics_exports/yolov8n_full_integer_quant.tflite",
        "ultralytics",
    ),
    "yolo11_integer_quant": (
        "ultralytics_yolo11n_coco_dequantized/ultralytics_exports/yolo11n_integer_quant.tflite",
        "ultralytics",
    ),
    "yolo26_dynamic_range_end2end": (
        "ultralytics_yolo26n_coco_dequantized/ultralytics_exports/yolo26n_int8.tflite",
        "ultralytics_end2end",
    ),
}
# COCO val2017 images with one large labelled object (class, cx cy w h as fractions of the image, from its label).
LABELLED = {
    "000000183500.jpg": (4, (0.495227, 0.483140, 0.697547, 0.615721)),
    "000000140270.jpg": (17, (0.587475, 0.549900, 0.463583, 0.417850)),
}


@pytest.mark.parametrize("form", list(LEGACY))
def test_legacy_export_s_best_detection_is_the_labelled_object(form):
    """The model's single best detection must be the labelled object, in the original image's pixels: fractions
    read as pixels shrink to a dot in the corner, pixels read as fractions spill far past the image."""
    from tfyolo.data.images import letterbox, read_image_rgb, to_model_input
    from tfyolo.evaluation.runners import TFLiteRunner

    relative, layout = LEGACY[form]
    runner = TFLiteRunner(shared_file(relative))
    assert (runner.layout, runner.channels_first, runner.normalized_boxes) == (layout, False, True)
    for name, (label_class, label_box) in LABELLED.items():
        image = read_image_rgb(shared_dataset("coco_val150") / "images" / name)
        boxed, info = letterbox(image, runner.input_size)
        boxes, scores = runner.predict(to_model_input(boxed[None]))
        anchor, found_class = np.unravel_index(np.argmax(scores[0]), scores[0].shape)
        found = info.to_original(boxes[0, anchor] * runner.input_size)[0]
        height, width = image.shape[:2]
        expected = cxcywh_to_xyxy(np.array(label_box)) * [width, height, width, height]
        assert found_class == label_class and iou(found, expected) > 0.8, (name, found, expected)


def end2end_model(rows, channels_first=False):
    """A Keras model with Ultralytics' end-to-end layout: one (1, k, 6) output holding `rows` (x1 y1 x2 y2 score
    class) for any 64px image, plus 1e-4 x the image mean so that the graph keeps its input (and its ops)."""
    from tfyolo.compat import keras

    images = keras.Input((3, 64, 64) if channels_first else (64, 64, 3), batch_size=1)
    dense = keras.layers.Dense(rows.size)
    outputs = keras.layers.Reshape(rows.shape)(dense(keras.layers.GlobalAveragePooling2D()(images)))
    dense.set_weights([np.full((3 if not channels_first else 64, rows.size), 1e-4), rows.ravel()])
    return keras.Model(images, outputs)


def to_tflite(model, names, integer=None):
    """Converts with TFLiteConverter and embeds Ultralytics-style class names. integer: None (float), "float_io"
    (int8 inside, float input and output: onnx2tf's `_integer_quant`) or "int8_io" (`_full_integer_quant`)."""
    from tfyolo.compat import tf
    from tfyolo.metadata import embed_metadata

    shape = tuple(model.input_shape)
    function = tf.function(lambda images: model(images))
    concrete = function.get_concrete_function(tf.TensorSpec(shape, tf.float32, name="images"))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], function)
    if integer:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [np.random.default_rng(i).uniform(0, 1, shape).astype(np.float32)] for i in range(4)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if integer == "int8_io":
            converter.inference_input_type = converter.inference_output_type = tf.int8
    return embed_metadata(converter.convert(), {"names": {str(i): f"class{i}" for i in range(names)}})


# Three detections (x1 y1 x2 y2 as fractions of the input, score, class) and seven all-zero padding rows.
DETECTIONS = np.array([[0.1, 0.2, 0.5, 0.6, 0.9, 1], [0.55, 0.3, 0.95, 0.8, 0.7, 0], [0.0, 0.6, 0.3, 1.0, 0.4, 2]])
ROWS = np.r_[DETECTIONS, np.zeros((7, 6))]


@pytest.mark.parametrize("channels_first", [False, True], ids=["NHWC", "NCHW"])
@pytest.mark.parametrize("fractions", [True, False], ids=["fractions", "pixels"])
def test_end_to_end_box_units_are_decided_per_model(tmp_path, fractions, channels_first):
    """The same detections written as fractions of the 64px input (legacy onnx2tf) or in its pixels (ONNX, LiteRT)
    decode to the same boxes; the padding rows (70% of them, all zero) must not sway the decision."""
    from tfyolo.evaluation.runners import TFLiteRunner

    rows = ROWS.copy()
    if not fractions:
        rows[:, :4] *= 64
    path = tmp_path / "end2end.tflite"
    path.write_bytes(to_tflite(end2end_model(rows.astype(np.float32), channels_first), names=3))
    runner = TFLiteRunner(path)
    assert (runner.layout, runner.postprocess, runner.num_classes) == ("ultralytics_end2end", "topk", 3)
    assert runner.normalized_boxes == fractions
    boxes, scores = runner.predict(np.zeros((2, 64, 64, 3), np.float32))
    np.testing.assert_allclose(boxes[1, :3], DETECTIONS[:, :4], atol=1e-3)
    expected_scores = np.zeros((3, 3))
    expected_scores[np.arange(3), DETECTIONS[:, 5].astype(int)] = DETECTIONS[:, 4]
    np.testing.assert_allclose(scores[1, :3], expected_scores, atol=1e-3)


@pytest.mark.parametrize("io", ["int8_io", "float_io"])
def test_full_integer_end_to_end_export_is_refused_in_one_line(tmp_path, io):
    """Class ids up to 79 on the same int8 grid as the scores and 0-1 boxes: a step of 79/255 = 0.31, four score
    levels. Whether the int8 tensor is the output or is dequantized inside the graph, the file is refused."""
    from tfyolo.errors import ModelError
    from tfyolo.evaluation.runners import TFLiteRunner

    rows = ROWS.copy()
    rows[0, 5] = 79
    path = tmp_path / "end2end_full_integer_quant.tflite"
    path.write_bytes(to_tflite(end2end_model(rows.astype(np.float32)), names=80, integer=io))
    with pytest.raises(ModelError) as error:
        TFLiteRunner(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(path))
    assert "boxes, scores and class ids on one integer grid of step 0.3" in message
    assert "cannot be scored" in message and "dynamic-range" in message


def test_an_end_to_end_export_on_a_fine_integer_grid_is_read():
    """The refusal is about the step, not the type: one class and 0-1 boxes put the int8 grid at 1/255, fine
    enough to rank scores, and such a file is decoded (to within a step)."""
    from tfyolo.evaluation.runners import TFLiteRunner

    rows = ROWS.copy()
    rows[:, 5] = 0
    runner = TFLiteRunner(model_content=to_tflite(end2end_model(rows.astype(np.float32)), names=1, integer="int8_io"))
    assert runner.normalized_boxes
    boxes, scores = runner.predict(np.zeros((1, 64, 64, 3), np.float32))
    np.testing.assert_allclose(boxes[0, :3], DETECTIONS[:, :4], atol=2 / 255)
    np.testing.assert_allclose(scores[0, :3, 0], DETECTIONS[:, 4], atol=2 / 255)


def test_bundle_of_an_end_to_end_export_in_fractions_gives_pixels(tmp_path):
    """The edge bundle's reference_infer.py reads the box units from the manifest, as the runner decided them."""
    import cv2

    from tests.bundles import bundle_with_reference

    model = tmp_path / "end2end.tflite"
    model.write_bytes(to_tflite(end2end_model(ROWS.astype(np.float32)), names=3))
    image = tmp_path / "gray.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 90, np.uint8))
    bundle = tmp_path / "bundle"
    detections = bundle_with_reference(model, [image], bundle).run(image, conf=0.25, bundle=bundle)
    found = sorted((d["score"], d["class_id"], d["box"]) for d in detections)[::-1]
    np.testing.assert_allclose([box for _, _, box in found], DETECTIONS[:, :4] * 64, atol=0.1)
    assert [class_id for _, class_id, _ in found] == [1, 0, 2]
