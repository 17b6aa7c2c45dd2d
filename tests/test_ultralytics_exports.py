"""Genuine Ultralytics 8.4 LiteRT exports (NCHW input, float I/O, normalized boxes, metadata.json appended),
read from ../shared/weights as test references only."""

import json

import numpy as np
import pytest

from tests.conftest import SHARED, shared_dataset

WEIGHTS = SHARED / "weights" / "ultralytics_yolov8n_pennfudan"


def shared_weights():
    if not WEIGHTS.is_dir():
        pytest.skip("needs ../shared/weights/ultralytics_yolov8n_pennfudan beside the project (present in CI)")
    return WEIGHTS


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_litert_export_is_read_as_ultralytics_wrote_it(precision):
    from tfyolo.evaluation.runners import TFLiteRunner

    runner = TFLiteRunner(shared_weights() / f"yolov8n_pennfudan_320_{precision}.tflite")
    assert (runner.layout, runner.input_size, runner.num_classes) == ("ultralytics", 320, 1)
    assert runner.channels_first and runner.normalized_boxes and runner.names == ["person"]


def test_fp32_export_reproduces_onnx_runtime_golden_outputs():
    from tfyolo.evaluation.runners import TFLiteRunner

    golden = np.load(shared_weights() / "golden_io.npz")
    runner = TFLiteRunner(WEIGHTS / "yolov8n_pennfudan_320_fp32.tflite")
    raw = runner.predict_raw(golden["images"])["output0"]
    # The same float32 network in two runtimes; boxes are compared in pixels (normalized x 320), where the
    # import acceptance bound of the project is 1e-3.
    np.testing.assert_allclose(raw[:, :4] * 320, golden["output0"][:, :4], atol=1e-3)
    np.testing.assert_allclose(raw[:, 4:], golden["output0"][:, 4:], atol=1e-5)


@pytest.mark.parametrize("precision, key", [("fp32", "tfl_fp32"), ("int8", "tfl_int8")])
def test_tfyolo_eval_agrees_with_ultralytics_val(precision, key, tmp_path):
    """Ultralytics validates exports square at 320, as tfyolo does (same letterbox; INTER_AREA when shrinking).
    What remains is the AP computation: pycocotools (101-point precision sum, its own matching, top 100
    detections per image) against Ultralytics' ap_per_class (trapezoid over 101 points, its own matching). On
    these 51 images that moved mAP50-95 by +0.79 (fp32) / -0.27 (int8) points and mAP50 by +0.76 / -1.58; the
    bound is 2 points, a little over Ultralytics' own rect-vs-square spread (0.6 points) plus the rank of one
    detection among 115 objects."""
    from click.testing import CliRunner

    from tfyolo.cli.evaluate import main

    data = shared_dataset("pennfudan") / "data.yaml"
    expected = json.loads((shared_weights() / "ul_results.json").read_text())["val_ultralytics"]["results"][key]
    result = CliRunner().invoke(
        main,
        [
            str(WEIGHTS / f"yolov8n_pennfudan_320_{precision}.tflite"),
            "--data",
            str(data),
            "--json",
            str(tmp_path / "e.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["layout"] == "ultralytics" and report["num_images"] == 51
    assert report["map50_95"] == pytest.approx(expected["map50_95"], abs=0.02)
    assert report["map50"] == pytest.approx(expected["map50"], abs=0.02)


def test_bundle_and_reference_infer_of_an_nchw_export(tmp_path):
    import importlib.util

    from tfyolo.bundle import make_bundle, verify_bundle
    from tfyolo.data.images import letterbox, read_image_rgb, to_model_input
    from tfyolo.evaluation.runners import TFLiteRunner
    from tfyolo.ops.nms import NMSConfig, non_max_suppression

    model = shared_weights() / "yolov8n_pennfudan_320_int8.tflite"
    image = shared_dataset("pennfudan") / "images" / "FudanPed00001.png"
    for relative, data in make_bundle(model, [image]).items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(data)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["input"]["layout"] == "NCHW" and manifest["input"]["shape"] == [1, 3, 320, 320]
    assert manifest["decode"]["box_units"] == "normalized" and manifest["names"] == ["person"]
    assert verify_bundle(tmp_path) == []

    spec = importlib.util.spec_from_file_location("reference_infer", tmp_path / "reference_infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    detections = module.run(image, conf=0.25, bundle=tmp_path)
    runner = TFLiteRunner(model)
    boxed, info = letterbox(read_image_rgb(image), 320)
    boxes, scores = runner.predict(to_model_input(boxed[None]))
    kept, kept_scores, kept_classes = non_max_suppression(boxes[0] * 320, scores[0], NMSConfig(0.25, 0.7, 300))
    # Ultralytics' golden image shows two pedestrians (scores 0.784 and lower); both paths must find them.
    assert len(detections) == len(kept_scores) >= 1
    np.testing.assert_allclose([d["score"] for d in detections], kept_scores, atol=1e-5)
    np.testing.assert_allclose([d["box"] for d in detections], info.to_original(kept).reshape(-1, 4), atol=1e-2)
    assert {d["class"] for d in detections} == {"person"}
