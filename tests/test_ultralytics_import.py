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
    from tfyolo.models.detector_metadata import detector_config
    from tfyolo.models.model_io import load_keras_model

    result = CliRunner().invoke(cli, ["import", str(shipped()), "--out", str(tmp_path / "penn.keras")])
    assert result.exit_code == 0, result.output
    model = load_keras_model(tmp_path / "penn.keras")
    assert detector_config(tmp_path / "penn.keras").padding == "symmetric"
    golden = np.load(WEIGHTS / "golden_io.npz")
    rows = ultralytics_rows(model(golden["images"], training=False), 320)
    # Acceptance: decoded boxes (pixels) and scores (0-1) within 1e-3 of ONNX Runtime on the source ONNX.
    np.testing.assert_allclose(rows[:, :4], golden["output0"][:, :4], atol=1e-3)
    np.testing.assert_allclose(rows[:, 4:], golden["output0"][:, 4:], atol=1e-3)
    from tfyolo.metadata import find_model_metadata

    metadata = find_model_metadata(tmp_path / "penn.keras")
    assert not (tmp_path / "metadata.json").exists()  # inside the model file, not beside it
    assert (
        metadata["family"] == "yolov8"
        and metadata["names"] == ["person"]
        and metadata["imgsz"] == 320
        and len(metadata["source"]["sha256"]) == 64
    )


@pytest.fixture
def checkpoint(monkeypatch):
    """The shipped checkpoint as read, for tests that change it before the import sees it."""
    from tfyolo.importers import ultralytics_source
    from tfyolo.importers.ultralytics_checkpoint import read_checkpoint

    loaded = read_checkpoint(shipped())
    monkeypatch.setattr(ultralytics_source, "read_checkpoint", lambda path: loaded)
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

    type(_module(checkpoint, 2)).type_name = "ultralytics.nn.modules.block.C3"
    with pytest.raises(
        ModelError,
        match=r"not a detection model of a family tfyolo imports \(yolov8, yolo11\); it holds \['C3', 'Concat', ",
    ):
        import_weights("best.pt")


@pytest.mark.large
def test_the_imported_architecture_takes_qat_and_converts_integer_only():
    from tfyolo.models.model_config import ModelConfig
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


def anchor_constants(size, strides=(8, 16, 32)):
    """Ultralytics' `make_anchors` (grid cell centres, offset 0.5) and stride tensor, as its ONNX export embeds them:
    anchors (1, 2, N) in grid units, strides (1, N)."""
    points, steps = [], []
    for stride in strides:
        cells = size // stride
        y, x = np.meshgrid(np.arange(cells) + 0.5, np.arange(cells) + 0.5, indexing="ij")
        points.append(np.stack([x.ravel(), y.ravel()]))
        steps.append(np.full(cells * cells, stride))
    return np.concatenate(points, 1)[None].astype(np.float32), np.concatenate(steps)[None].astype(np.float32)


def onnx_at_size(source, size):
    """The shipped ONNX graph at another input size. Its export baked the 320 px anchor grid and two anchor counts
    into constants; only those are regenerated, every weight and node stays as exported."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(source)
    constants = {init.name: init for init in model.graph.initializer}
    anchors_320, strides_320 = anchor_constants(320)
    # The regeneration must reproduce the shipped constants exactly before it is trusted at another size.
    np.testing.assert_array_equal(numpy_helper.to_array(constants["/model.22/Constant_12_output_0"]), anchors_320)
    np.testing.assert_array_equal(numpy_helper.to_array(constants["/model.22/Constant_15_output_0"]), strides_320)
    anchors, strides = anchor_constants(size)
    replacements = {
        "/model.22/Constant_12_output_0": anchors,
        "/model.22/Constant_13_output_0": anchors,
        "/model.22/Constant_15_output_0": strides,
        "/model.22/dfl/Constant_output_0": np.array([1, 4, 16, -1], np.int64),
        "/model.22/dfl/Constant_1_output_0": np.array([1, 4, -1], np.int64),
    }
    for name, value in replacements.items():
        constants[name].CopyFrom(numpy_helper.from_array(value, name))
    del model.graph.value_info[:]
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = size
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_value = size
    model.graph.output[0].type.tensor_type.shape.dim[2].dim_value = anchors.shape[-1]
    return model.SerializeToString()


@pytest.mark.large
@pytest.mark.parametrize("size", [320, 640])
def test_imported_checkpoint_matches_onnx_runtime_on_real_images(size):
    """Acceptance at 320 and 640: the checkpoint imported at `size` against ONNX Runtime running the shipped ONNX
    at `size`, on every PennFudan val image letterboxed as tfyolo evaluates them."""
    ort = pytest.importorskip("onnxruntime")
    from tfyolo.data.images import letterbox, read_image_rgb, to_model_input
    from tfyolo.importers.ultralytics_import import import_weights

    model, _ = import_weights(shipped(), input_size=size)
    session = ort.InferenceSession(onnx_at_size(WEIGHTS / "best.onnx", size), providers=["CPUExecutionProvider"])
    val = SHARED / "datasets" / "pennfudan"
    paths = [val / line.strip() for line in (val / "val.txt").read_text().split()][:8]
    images = to_model_input(np.stack([letterbox(read_image_rgb(path), size)[0] for path in paths]))
    expected = np.concatenate([session.run(None, {"images": image[None].transpose(0, 3, 1, 2)})[0] for image in images])
    rows = ultralytics_rows(model(images, training=False), size)
    assert rows.shape == expected.shape == (len(paths), 5, (size // 8) ** 2 * 21 // 16)
    np.testing.assert_allclose(rows[:, :4], expected[:, :4], atol=1e-3)
    np.testing.assert_allclose(rows[:, 4:], expected[:, 4:], atol=1e-3)
