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
    [
        ("ultralytics_yolov8n_pennfudan/best.onnx", 1),
        ("nudenet_320n/320n.onnx", 18),
        ("ultralytics_yolo11n_pennfudan/best.pt", 1),
        ("ultralytics_yolo11n_pennfudan/best.onnx", 1),
    ],
)
def test_imported_files_match_their_onnx_runtime_golden_outputs(relative, classes):
    """Each file against ONNX Runtime's outputs shipped beside it (golden_io.npz). Ultralytics' ONNX export folds
    BatchNorm into the convolutions; the NudeNet file was exported by another team's Ultralytics (8.2.46) and has
    18 classes; YOLO11's checkpoint and export carry its C2PSA attention."""
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


def test_a_missing_tensor_read_for_its_shape_refuses_the_import_in_one_line(checkpoint):
    """C2f's split width is read from cv1's shape before any tensor is taken; a file without it ended in an
    "unexpected KeyError" line (found by a byte-edit fuzz of a checkpoint)."""
    from tfyolo.importers.ultralytics_import import import_weights

    del _module(checkpoint, 6).children()["cv1"].children()["conv"]._parameters["weight"]
    with pytest.raises(ModelError, match="model.6.cv1.conv.weight is missing; not the architecture") as raised:
        import_weights("best.pt")
    assert "\n" not in str(raised.value)


def test_unsupported_modules_are_named(checkpoint):
    from tfyolo.importers.ultralytics_import import import_weights

    type(_module(checkpoint, 2)).type_name = "ultralytics.nn.modules.block.C3"
    with pytest.raises(
        ModelError,
        match=r"a family tfyolo imports \(yolov8, yolo11, yolo26\); it holds \[.C3., .Concat., ",
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


def onnx_at_size(source, size, trained=320):
    """The shipped ONNX graph at another input size. Its export baked the anchor grid, the stride tensor and the
    anchor and token counts of its 320 px input into constants; only those are regenerated, every weight and node
    stays as exported. Found by value: the anchor grid and strides equal `make_anchors` at 320 (checked bit for bit
    before anything is replaced), the DFL reshapes carry the anchor count, YOLO11's attention reshapes the P5 token
    count and side."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(source)
    anchors_old, strides_old = anchor_constants(trained)
    anchors_new, strides_new = anchor_constants(size)
    count_old, count_new = anchors_old.shape[-1], anchors_new.shape[-1]
    side_old, side_new = trained // 32, size // 32
    replaced = {"anchors": 0, "strides": 0}
    for initializer in model.graph.initializer:
        if initializer.name.startswith("model."):
            continue
        value = numpy_helper.to_array(initializer)
        if value.shape == anchors_old.shape and np.array_equal(value, anchors_old):
            new, replaced["anchors"] = anchors_new, replaced["anchors"] + 1
        elif value.shape == strides_old.shape and np.array_equal(value, strides_old):
            new, replaced["strides"] = strides_new, replaced["strides"] + 1
        elif value.dtype == np.int64 and value.ndim == 1 and count_old in value:
            new = np.where(value == count_old, count_new, value)  # DFL reshapes (1, 4, 16, N), (1, 4, N)
        elif value.dtype == np.int64 and value.ndim == 1 and len(value) == 4 and "attn" in initializer.name:
            new = value.copy()
            if value[3] == side_old * side_old:
                new[3] = side_new * side_new  # (1, heads, channels, tokens)
            elif list(value[2:]) == [side_old, side_old]:
                new[2:] = side_new  # (1, channels, H, W)
        else:
            continue
        initializer.CopyFrom(numpy_helper.from_array(new.astype(value.dtype), initializer.name))
    assert replaced == {"anchors": 2, "strides": 1}, replaced
    del model.graph.value_info[:]
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = size
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_value = size
    model.graph.output[0].type.tensor_type.shape.dim[2].dim_value = count_new
    return model.SerializeToString()


@pytest.mark.large
@pytest.mark.parametrize("family", ["yolov8n", "yolo11n"])
@pytest.mark.parametrize("size", [320, 640])
@pytest.mark.parametrize("source", ["best.pt", "best.onnx"])
def test_imported_checkpoint_matches_onnx_runtime_on_real_images(family, size, source):
    """Acceptance at 320 and 640, for every family and both source formats: the file imported at `size` against ONNX
    Runtime running the shipped ONNX at `size`, on PennFudan val images letterboxed as tfyolo evaluates them."""
    ort = pytest.importorskip("onnxruntime")
    from tfyolo.data.images import letterbox, read_image_rgb, to_model_input
    from tfyolo.importers.ultralytics_import import import_weights

    folder = SHARED / "weights" / f"ultralytics_{family}_pennfudan"
    if not (folder / source).is_file():
        pytest.skip(f"needs ../shared/weights/ultralytics_{family}_pennfudan (present in CI)")
    model, metadata = import_weights(folder / source, input_size=size)
    session = ort.InferenceSession(onnx_at_size(folder / "best.onnx", size), providers=["CPUExecutionProvider"])
    val = SHARED / "datasets" / "pennfudan"
    paths = [val / line.strip() for line in (val / "val.txt").read_text().split()][:8]
    images = to_model_input(np.stack([letterbox(read_image_rgb(path), size)[0] for path in paths]))
    expected = np.concatenate([session.run(None, {"images": image[None].transpose(0, 3, 1, 2)})[0] for image in images])
    rows = ultralytics_rows(model(images, training=False), size)
    assert rows.shape == expected.shape == (len(paths), 5, (size // 8) ** 2 * 21 // 16)
    # The mapping, free of float32 noise: a float64 build of the same weights within 1e-3 of ONNX Runtime. Then what
    # the deployed float32 graph adds by its own rounding, within 1e-3 of that build. (YOLO11 at 640: 5.5e-4 and
    # 7.3e-4 px; the two runtimes' float32 noise together reach 1.07e-3 on 1 of 268,800 coordinates.)
    exact = ultralytics_rows(float64_outputs(model, metadata, images), size)
    np.testing.assert_allclose(exact[:, :4], expected[:, :4], atol=1e-3)
    np.testing.assert_allclose(exact[:, 4:], expected[:, 4:], atol=1e-3)
    np.testing.assert_allclose(rows, exact, atol=1e-3)


def float64_outputs(model, metadata, images):
    """The outputs of `model`'s weights in a float64 build of its architecture (from its metadata)."""
    from tfyolo.compat import keras
    from tfyolo.models.detector_metadata import config_from_metadata
    from tfyolo.models.yolo_detector import build_yolo_detector

    keras.backend.set_floatx("float64")
    try:
        wide = build_yolo_detector(config_from_metadata(metadata, "import"))
        wide.set_weights([weight.astype(np.float64) for weight in model.get_weights()])
        return wide(images.astype(np.float64), training=False)
    finally:
        keras.backend.set_floatx("float32")
