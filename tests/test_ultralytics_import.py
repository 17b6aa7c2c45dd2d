"""Importing Ultralytics YOLOv8 checkpoints: the shipped PennFudan model must compute what ONNX Runtime computes."""

import numpy as np
import pytest

from tests.conftest import SHARED
from tfyolo.errors import ModelError

WEIGHTS = SHARED / "weights" / "ultralytics_yolov8n_pennfudan"


def shipped():
    if not (WEIGHTS / "best.pt").is_file():
        pytest.skip("needs ../shared/weights/ultralytics_yolov8n_pennfudan beside the project (present in CI)")
    return WEIGHTS / "best.pt"


def ultralytics_rows(outputs, size):
    """tfyolo's raw outputs in Ultralytics' layout: (batch, 4 + classes, anchors), cx cy w h in pixels."""
    from tfyolo.ops.boxes import convert_format
    from tfyolo.ops.decode import decode_predictions

    boxes, scores = decode_predictions(outputs["box_distribution"].numpy(), outputs["class_logits"].numpy(), size)
    return np.concatenate([convert_format(boxes * size, "xyxy", "cxcywh"), scores], axis=-1).transpose(0, 2, 1)


@pytest.mark.parametrize(
    "relative, classes",
    [("ultralytics_yolov8n_pennfudan/best.onnx", 1), ("nudenet_320n/320n.onnx", 18)],
)
def test_imported_onnx_exports_match_onnx_runtime(relative, classes):
    """Ultralytics' ONNX export folds BatchNorm into the convolutions; the NudeNet file was exported by another
    team's Ultralytics (8.2.46) and has 18 classes."""
    from tfyolo.importers.ultralytics_import import import_weights

    path = SHARED / "weights" / relative
    if not path.is_file():
        pytest.skip(f"needs ../shared/weights/{relative} beside the project (present in CI)")
    model, metadata = import_weights(path)
    assert len(metadata["names"]) == classes and metadata["imgsz"] == 320
    golden = np.load(path.parent / "golden_io.npz")
    rows = ultralytics_rows(model(golden["images"], training=False), 320)
    np.testing.assert_allclose(rows[:, :4], golden["output0"][:, :4], atol=1e-3)
    np.testing.assert_allclose(rows[:, 4:], golden["output0"][:, 4:], atol=1e-3)


def test_imported_checkpoint_matches_onnx_runtime(tmp_path):
    from click.testing import CliRunner

    from tfyolo.cli.main import cli
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.models.resize import infer_model_config

    result = CliRunner().invoke(cli, ["import", str(shipped()), "--out", str(tmp_path / "penn.keras")])
    assert result.exit_code == 0, result.output
    model = load_keras_model(tmp_path / "penn.keras")
    assert infer_model_config(model).padding == "symmetric"
    golden = np.load(WEIGHTS / "golden_io.npz")
    rows = ultralytics_rows(model(golden["images"], training=False), 320)
    # Acceptance: decoded boxes (pixels) and scores (0-1) within 1e-3 of ONNX Runtime on the source ONNX.
    np.testing.assert_allclose(rows[:, :4], golden["output0"][:, :4], atol=1e-3)
    np.testing.assert_allclose(rows[:, 4:], golden["output0"][:, 4:], atol=1e-3)
    import json

    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["names"] == ["person"] and metadata["imgsz"] == 320 and len(metadata["source"]["sha256"]) == 64


@pytest.fixture
def checkpoint(monkeypatch):
    """The shipped checkpoint as read, for tests that change it before the import sees it."""
    from tfyolo.importers import ultralytics_import
    from tfyolo.importers.ultralytics_checkpoint import read_checkpoint

    loaded = read_checkpoint(shipped())
    monkeypatch.setattr(ultralytics_import, "read_checkpoint", lambda path: loaded)
    return loaded


def _module(checkpoint, index):
    return checkpoint["model"].children()["model"].children()[str(index)]


def test_an_unused_source_tensor_refuses_the_import(checkpoint):
    from tfyolo.importers.ultralytics_import import import_weights

    conv = _module(checkpoint, 0).children()["conv"]
    conv._parameters["bias"] = np.zeros(16, np.float16)  # a weight the Keras graph has no place for
    with pytest.raises(ModelError, match=r"incomplete import, refused.*model\.0\.conv\.bias"):
        import_weights("best.pt")


def test_a_missing_source_tensor_refuses_the_import(checkpoint):
    from tfyolo.importers.ultralytics_import import import_weights

    del _module(checkpoint, 9).children()["cv2"].children()["bn"]._buffers["running_var"]
    with pytest.raises(ModelError, match="model.9.cv2.bn.running_var is missing"):
        import_weights("best.pt")


def test_unsupported_modules_are_named(checkpoint):
    from tfyolo.importers.ultralytics_import import import_weights

    type(_module(checkpoint, 2)).type_name = "ultralytics.nn.modules.block.C3k2"
    with pytest.raises(ModelError, match="module 2 is block.C3k2; supported are Ultralytics YOLOv8 detection"):
        import_weights("best.pt")


@pytest.mark.large
def test_the_imported_architecture_takes_qat_and_converts_integer_only():
    from tfyolo.config import ModelConfig
    from tfyolo.models.yolo_detector import build_yolo_detector
    from tfyolo.qat.qat_model import build_qat_model
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.isolated import check_artifact
    from tfyolo.quantization.recipe import Recipe

    model = build_yolo_detector(ModelConfig(num_classes=1, input_size=64, padding="symmetric"))
    recipe = Recipe(name="int8", mode="int8")
    inspection = check_artifact(convert(build_qat_model(model), recipe), recipe)
    # The seven strided convolutions each get their explicit PAD; everything stays integer.
    assert inspection["full_integer"] and inspection["ops"]["PAD"] == 7
