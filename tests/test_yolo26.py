"""YOLO26 in the registry: its builder against Ultralytics' parameter counts, its two heads, the DFL-free decode, top-k
instead of NMS, and the import of both heads from a checkpoint the test writes and from the shipped PennFudan model."""

import json

import numpy as np
import pytest

from tests.conftest import SHARED, shared_dataset
from tests.ultralytics_layouts import write_ultralytics_checkpoint
from tfyolo.errors import ConfigError
from tfyolo.models.model_config import ModelConfig

WEIGHTS = SHARED / "weights" / "ultralytics_yolo26n_pennfudan"

# Ultralytics' summaries in cfg/models/26/yolo26.yaml at 80 classes, both heads (training holds both; nothing is
# fixed: reg_max 1 has no DFL convolution).
YOLO26_PARAMETERS = {"n": 2_572_280, "s": 10_009_784, "m": 21_896_248, "l": 26_299_704, "x": 58_993_368}


def trainable_parameters(model):
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def shipped(name):
    if not (WEIGHTS / name).is_file():
        pytest.skip("needs ../shared/weights/ultralytics_yolo26n_pennfudan beside the project (present in CI)")
    return WEIGHTS / name


@pytest.mark.parametrize("scale", ["n", "s", *(pytest.param(scale, marks=pytest.mark.large) for scale in "mlx")])
def test_yolo26_parameter_counts_equal_ultralytics(scale):
    from tfyolo.models.yolo_detector import build_yolo_detector

    model = build_yolo_detector(ModelConfig(num_classes=80, family="yolo26", scale=scale, head="both", input_size=64))
    assert trainable_parameters(model) == YOLO26_PARAMETERS[scale]
    # One head alone drops exactly the other head's layers: the two are the same shapes.
    one2one = build_yolo_detector(ModelConfig(num_classes=80, family="yolo26", scale=scale, input_size=64))
    head_layers = [layer for layer in model.layers if layer.name.startswith("head") and "_o2o_" not in layer.name]
    head = sum(int(np.prod(w.shape)) for layer in head_layers for w in layer.trainable_weights)
    assert trainable_parameters(one2one) == YOLO26_PARAMETERS[scale] - head


def test_heads_belong_to_their_family():
    config = ModelConfig(num_classes=1, family="yolo26")
    assert (config.head, config.postprocess, config.reg_max) == ("one2one", "topk", 1)
    both = ModelConfig(num_classes=1, family="yolo26", head="both")
    assert (both.inference_head, both.postprocess) == ("one2many", "nms")
    assert ModelConfig(num_classes=1, family="yolo11").postprocess == "nms"
    with pytest.raises(ConfigError, match=r"head must be one of \['one2many'\] for yolov8, received 'one2one'"):
        ModelConfig(num_classes=1, family="yolov8", head="one2one")
    with pytest.raises(ConfigError, match="reg_max of yolo26 is 1, received 16"):
        ModelConfig(num_classes=1, family="yolo26", reg_max=16)


def test_reg_max_1_boxes_are_the_distances_themselves():
    """64 px input: the first anchor is cell (0, 0) of stride 8, its point (0.5, 0.5) cells = (4, 4) px. Distances
    (1, 2, 3, 4) cells are 8, 16, 24, 32 px: box (4 - 8, 4 - 16, 4 + 24, 4 + 32) = (-4, -12, 28, 36) px."""
    from tfyolo.ops.decode import decode_predictions

    anchors = 8 * 8 + 4 * 4 + 2 * 2
    distances = np.zeros((1, anchors, 4), np.float32)
    distances[0, 0] = (1, 2, 3, 4)
    boxes, scores = decode_predictions(distances, np.zeros((1, anchors, 1), np.float32), 64, reg_max=1)
    np.testing.assert_allclose(boxes[0, 0] * 64, (-4, -12, 28, 36), atol=1e-5)
    assert scores[0, 0, 0] == 0.5


def test_top_k_keeps_several_classes_of_one_anchor_and_suppresses_nothing():
    """k = 3 of 5 anchors, 2 classes. Best class score per anchor: 0.9, 0.2, 0.7, 0.65, 0.3, so anchors 0, 2, 3 go
    on; their pairs ranked: 0.9 (anchor 0, class 0), 0.8 (0, 1), 0.7 (2, 0), then 0.65, 0.6, 0.05 are cut at k.
    Anchors 0 and 2 hold the same box: NMS would keep one of them per class; top-k keeps both."""
    from tfyolo.ops.nms import NMSConfig, non_max_suppression
    from tfyolo.ops.topk import top_k_detections

    scores = np.array([[0.9, 0.8], [0.1, 0.2], [0.7, 0.05], [0.6, 0.65], [0.3, 0.0]], np.float32)
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 10], [20, 20, 30, 30], [70, 70, 80, 80]], float)
    kept_boxes, kept_scores, classes = top_k_detections(boxes, scores, NMSConfig(max_detections=3))
    np.testing.assert_allclose(kept_scores, [0.9, 0.8, 0.7])
    assert classes.tolist() == [0, 1, 0]
    np.testing.assert_array_equal(kept_boxes, boxes[[0, 0, 2]])
    _, threshold_scores, _ = top_k_detections(boxes, scores, NMSConfig(max_detections=3, confidence_threshold=0.75))
    np.testing.assert_allclose(threshold_scores, [0.9, 0.8])
    _, nms_scores, _ = non_max_suppression(boxes, scores, NMSConfig(max_detections=3))
    assert 0.7 not in nms_scores  # the same box as anchor 0's, suppressed


# === YOLO26 imported from a checkpoint the test writes itself ===


@pytest.fixture(scope="module")
def yolo26_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("y26") / "best.pt"
    return path, write_ultralytics_checkpoint(path, "yolo26", "n", num_classes=2)


def test_a_yolo26_checkpoint_imports_both_heads_completely(yolo26_checkpoint):
    from tfyolo.importers.ultralytics_import import import_weights

    path, state = yolo26_checkpoint
    model, metadata = import_weights(path, input_size=64, head="both")
    assert (metadata["family"], metadata["scale"], metadata["head"], metadata["reg_max"]) == ("yolo26", "n", "both", 1)
    assert "left_out" not in metadata["source"]
    learned = sum(array.size for key, array in state.items() if not key.endswith("num_batches_tracked"))
    assert sum(int(np.prod(w.shape)) for w in model.weights) == learned
    # The one-to-one head's own weights, not the one-to-many head's.
    kernel = state["model.23.one2one_cv3.1.2.weight"].astype(np.float32).transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(model.get_layer("head1_o2o_cls_pred").get_weights()[0], kernel)
    assert not np.array_equal(model.get_layer("head1_cls_pred").get_weights()[0], kernel)
    # SPPF: the checkpoint's Identity cv1 became a graph without an activation there, and the residual is there.
    names = {layer.name for layer in model.layers}
    assert "sppf_cv1_act" not in names and "sppf_add" in names and "neck_out5_m0_psa_attn_add" in names


def test_the_default_import_is_the_one_to_one_head_and_names_what_it_left_out(yolo26_checkpoint):
    from tfyolo.importers.ultralytics_import import import_weights

    path, state = yolo26_checkpoint
    model, metadata = import_weights(path, input_size=64)
    assert (metadata["head"], metadata["postprocess"]) == ("one2one", "topk")
    assert metadata["source"]["left_out"]["modules"] == ["model.23.cv2", "model.23.cv3"]
    assert list(model.output_names) == ["box_distribution", "class_logits"]
    np.testing.assert_array_equal(
        model.get_layer("head0_o2o_box_pred").get_weights()[1],
        state["model.23.one2one_cv2.0.2.bias"].astype(np.float32),
    )


def test_a_head_the_file_does_not_hold_is_refused(yolo26_checkpoint, monkeypatch):
    """An end-to-end export keeps the one-to-one head only: asking it for the one-to-many head names what it holds."""
    from tfyolo.errors import ModelError
    from tfyolo.importers import ultralytics_source
    from tfyolo.importers.ultralytics_import import import_weights

    path, _ = yolo26_checkpoint
    original = ultralytics_source._from_checkpoint

    def end2end_only(source_path):
        source = original(source_path)
        state = {k: v for k, v in source.state.items() if not k.startswith(("model.23.cv2", "model.23.cv3"))}
        return source.__class__(**{**source.__dict__, "state": state})

    monkeypatch.setattr(ultralytics_source, "_from_checkpoint", end2end_only)
    with pytest.raises(ModelError, match=r"--head one2many asks for the one-to-many head \(NMS\), which this yolo26"):
        import_weights(path, input_size=64, head="one2many")


# === The shipped Ultralytics YOLO26n (PennFudan), against ONNX Runtime's golden outputs ===


def decoded(model, images):
    from tfyolo.evaluation.runners import KerasRunner

    return KerasRunner(model).predict(images)


@pytest.mark.parametrize("source", ["best.pt", "best_one2many.onnx"])
def test_the_one_to_many_head_matches_onnx_runtime(source):
    from tfyolo.importers.ultralytics_import import import_weights
    from tfyolo.ops.boxes import convert_format

    model, metadata = import_weights(shipped(source), head="one2many")
    golden = np.load(WEIGHTS / "golden_io.npz")
    boxes, scores = decoded(model, golden["images"])
    expected = golden["output0_one2many"].transpose(0, 2, 1)  # (2, 2100, 5): cx cy w h px, score
    np.testing.assert_allclose(boxes * 320, convert_format(expected[..., :4], "cxcywh", "xyxy"), atol=1e-3)
    np.testing.assert_allclose(scores, expected[..., 4:], atol=1e-3)
    assert metadata["postprocess"] == "nms"


@pytest.mark.parametrize("source", ["best.pt", "best.onnx"])
def test_the_one_to_one_head_with_top_k_matches_the_end_to_end_export(source):
    """ONNX Runtime's (300, 6) rows of the end-to-end export against tfyolo's decode + top-k outside the graph. Rows
    scoring under 0.01 are left out: there the top-k order of near-ties differs between any two runtimes (PyTorch
    against ONNX Runtime too, SOURCE.md)."""
    from tfyolo.importers.ultralytics_import import import_weights
    from tfyolo.ops.nms import NMSConfig
    from tfyolo.ops.topk import top_k_detections

    model, metadata = import_weights(shipped(source))
    assert (metadata["head"], metadata["postprocess"]) == ("one2one", "topk")
    golden = np.load(WEIGHTS / "golden_io.npz")
    boxes, scores = decoded(model, golden["images"])
    for image in range(2):
        kept_boxes, kept_scores, classes = top_k_detections(
            boxes[image] * 320, scores[image], NMSConfig(confidence_threshold=0.01)
        )
        expected = golden["output0"][image]
        expected = expected[expected[:, 4] > 0.01]
        assert len(kept_scores) == len(expected) > 0
        np.testing.assert_allclose(kept_boxes, expected[:, :4], atol=1e-3)
        np.testing.assert_allclose(kept_scores, expected[:, 4], atol=1e-3)
        np.testing.assert_array_equal(classes, expected[:, 5])


def test_ultralytics_end_to_end_litert_export_is_read_with_its_top_k_rows():
    from tfyolo.evaluation.runners import TFLiteRunner

    runner = TFLiteRunner(shipped("yolo26n_pennfudan_320_fp32_end2end.tflite"))
    assert (runner.layout, runner.postprocess, runner.num_classes, runner.names) == (
        "ultralytics_end2end",
        "topk",
        1,
        ["person"],
    )
    golden = np.load(WEIGHTS / "golden_io.npz")
    boxes, scores = runner.predict(golden["images"])
    confident = golden["output0"][..., 4] > 0.01
    np.testing.assert_allclose((boxes * 320)[confident], golden["output0"][..., :4][confident], atol=1e-3)
    np.testing.assert_allclose(scores[..., 0][confident], golden["output0"][..., 4][confident], atol=1e-5)


def test_an_end_to_end_export_without_class_names_is_refused_in_one_line(monkeypatch):
    """(1, 300, 6) rows carry a class index, not a class count: without the names Ultralytics embeds, the evaluator
    cannot know how many classes to score, and says so rather than guessing."""
    from tfyolo import metadata
    from tfyolo.errors import ModelError
    from tfyolo.evaluation.runners import TFLiteRunner

    path = shipped("yolo26n_pennfudan_320_fp32_end2end.tflite")
    monkeypatch.setattr(metadata, "read_embedded_metadata", lambda *args, **kwargs: {})
    with pytest.raises(ModelError, match=r"an end-to-end \(1, 300, 6\) output, but no embedded class names"):
        TFLiteRunner(path)


def test_the_one_to_one_head_s_variables_are_found_inside_qat_wrappers():
    """The trainer routes the one-to-one loss term to `branch_layers(model, "one2one")`; a QAT model wraps every
    layer as `quant_<name>`, and the wrapped layers must still be found (else that head would not train in QAT)."""
    import tensorflow_model_optimization as tfmot

    from tfyolo.compat import keras
    from tfyolo.models.detect_head import branch_layers

    images = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem_conv")(images)
    outputs = [keras.layers.Conv2D(2, 1, name=name)(x) for name in ("head0_box_pred", "head0_o2o_box_pred")]
    quantized = tfmot.quantization.keras.quantize_model(keras.Model(images, outputs))
    found = [layer.name for layer in branch_layers(quantized, "one2one")]
    assert found == ["quant_head0_o2o_box_pred"]
    assert branch_layers(quantized, "one2many") == []


@pytest.mark.large
@pytest.mark.parametrize(
    "export, key",
    [
        ("yolo26n_pennfudan_320_fp32.tflite", "val_y26_pf_tfl_fp32"),
        ("yolo26n_pennfudan_320_int8.tflite", "val_y26_pf_tfl_int8"),
        ("yolo26n_pennfudan_320_fp32_end2end.tflite", "val_y26_pf_tfl_fp32_e2e"),
    ],
)
def test_tfyolo_eval_reads_ultralytics_yolo26_exports(export, key, tmp_path):
    """Each export scored by tfyolo-eval on the 51 val images, against Ultralytics' own val of it; the bound (2
    points) is the one of the other families' exports (see tests/test_ultralytics_exports.py)."""
    from click.testing import CliRunner

    from tfyolo.cli.evaluate import main

    data = shared_dataset("pennfudan") / "data.yaml"
    expected = json.loads((WEIGHTS / "ul_results.json").read_text())["val_ultralytics"]["results"][key]
    result = CliRunner().invoke(main, [str(shipped(export)), "--data", str(data), "--json", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["num_images"] == 51
    assert report["map50_95"] == pytest.approx(expected["map50_95"], abs=0.02)


def test_a_model_holding_both_heads_is_not_converted(yolo26_checkpoint, tmp_path):
    """An artifact ends in one head, post-processed as its metadata says: the training form is refused with the way
    out, before any conversion starts."""
    from tfyolo.importers.ultralytics_import import import_weights
    from tfyolo.jobs.run import run_job
    from tfyolo.jobs.spec import JobSpec
    from tfyolo.models.model_io import save_model_atomic

    path, _ = yolo26_checkpoint
    model, metadata = import_weights(path, input_size=64, head="both")
    save_model_atomic(model, tmp_path / "both.keras", metadata)
    with pytest.raises(ConfigError, match="holds both of its heads.*best_one2one.keras.*--head one2one"):
        run_job(JobSpec(model=str(tmp_path / "both.keras"), recipes=("fp32",), evaluate=False), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# === Training: both heads, ProgLoss, one anchor per object for the one-to-one head, STAL ===


def test_progloss_moves_the_one_to_many_weight_from_0_8_to_0_1():
    """Ultralytics' E2ELoss over 10 epochs: 0.8 in epoch 0, (1 - e / 9) * 0.7 + 0.1 after, 0.1 in epoch 9."""
    from tfyolo.losses.detection_loss import DetectionLoss

    loss = DetectionLoss(ModelConfig(num_classes=1, family="yolo26", head="both", input_size=64), 64, epochs=10)
    assert loss.one2many_weight_at(0) == pytest.approx(0.8)
    assert loss.one2many_weight_at(3) == pytest.approx((1 - 3 / 9) * 0.7 + 0.1)
    assert loss.one2many_weight_at(9) == pytest.approx(0.1)
    loss.start_epoch(9)
    assert float(loss.one2many_weight.numpy()) == pytest.approx(0.1)
    single = DetectionLoss(ModelConfig(num_classes=1, family="yolo26", input_size=64), 64, epochs=10)
    assert (single.heads, single.has_head_only_term, single.one2many_weight_at(0)) == (("one2one",), False, 1.0)


def assign(min_side=None, top_k2=None):
    """One 2x2 px object at (9..11, 9..11) among four anchors at (4, 4), (12, 4), (4, 12), (12, 12) px, scores 0.5;
    each anchor predicts the object's box shifted by 0, 1, 2, 3 px (anchor 0 is exact, so the best aligned)."""
    from tfyolo.compat import tf
    from tfyolo.losses.task_aligned_assigner import TaskAlignedAssigner

    points = tf.constant([[4.0, 4.0], [12.0, 4.0], [4.0, 12.0], [12.0, 12.0]])
    gt = tf.constant([[[9.0, 9.0, 11.0, 11.0]]])
    predicted = tf.constant([[[9.0 + s, 9.0, 11.0 + s, 11.0] for s in (0, 1, 2, 3)]])
    assigner = TaskAlignedAssigner(1, top_k=7, top_k2=top_k2, min_side=min_side)
    _, _, foreground = assigner(
        tf.fill([1, 4, 1], 0.5), predicted, points, tf.zeros([1, 1], tf.int32), gt, tf.ones([1, 1])
    )
    return foreground.numpy()[0].tolist()


def test_stal_gives_a_tiny_object_candidates_and_top_k2_keeps_one():
    """No anchor centre lies inside a 2 px box: without STAL it has no positive at all. Widened to 16 px about its
    centre (2..18), all four centres are inside; top-k 7 keeps those whose prediction overlaps the box (shifted by 0
    and 1 px; by 2 or 3 px the IoU is 0); top_k2 1 keeps the best aligned, the exact one, anchor 0."""
    assert assign() == [False] * 4
    assert assign(min_side=16) == [True, True, False, False]
    assert assign(min_side=16, top_k2=1) == [True, False, False, False]


def test_reg_max_1_distance_loss_is_l1_on_fractions_of_the_input():
    """One anchor at (4, 4) px (stride 8, 64 px input) assigned a box whose distances are (1, 1, 1, 1) cells; it
    predicts (1, 1, 1, 2): the mean absolute error over the 4 sides is 1 cell / 4 = 0.25 cells = 2 px = 2 / 64 of the
    input, weighted by its class target and normalised by the sum of class targets (the same), times the gain 1.5."""
    from tfyolo.compat import tf
    from tfyolo.losses.yolo_loss import YOLOLoss

    class OneAnchor:
        def __call__(self, scores, boxes, points, gt_classes, gt_boxes, gt_mask):
            target_boxes = tf.tile(gt_boxes[:, :1], [1, tf.shape(points)[0], 1])
            foreground = tf.one_hot([0], tf.shape(points)[0], on_value=True, off_value=False)
            return target_boxes, tf.cast(foreground, tf.float32)[..., None], foreground

    loss = YOLOLoss(1, 64, reg_max=1, assigner=OneAnchor())
    distances = np.zeros((1, 84, 4), np.float32)
    distances[0, 0] = (1, 1, 1, 2)
    _, parts = loss(
        tf.constant(distances),
        tf.zeros((1, 84, 1)),
        tf.constant([[[-4.0, -4.0, 12.0, 12.0]]]),
        tf.zeros((1, 1), tf.int32),
        tf.ones((1, 1)),
    )
    assert float(parts["dfl"]) == pytest.approx(1.5 * 2 / 64, rel=1e-5)


@pytest.mark.large
def test_training_both_heads_the_one_to_one_loss_never_reaches_the_backbone(
    yolo26_checkpoint, tiny_synthetic, tmp_path, monkeypatch
):
    """With ProgLoss' one-to-many weight held at 0, only the one-to-one term is left, and it trains the one-to-one
    head alone (Ultralytics detaches its input): SGD without weight decay from imported weights leaves the backbone
    and the one-to-many head exactly as they were and moves the one-to-one head. The run saves both heads' model
    and each head alone."""
    from tfyolo.importers.ultralytics_import import import_weights
    from tfyolo.losses.detection_loss import DetectionLoss
    from tfyolo.metadata import find_model_metadata
    from tfyolo.models.model_io import load_keras_model, save_model_atomic
    from tfyolo.training.train_config import TrainConfig
    from tfyolo.training.trainer import Trainer

    path, _ = yolo26_checkpoint
    start, metadata = import_weights(path, input_size=64, head="both")
    save_model_atomic(start, tmp_path / "start.keras", metadata)
    monkeypatch.setattr(DetectionLoss, "one2many_weight_at", lambda self, epoch: 0.0)
    config = TrainConfig(
        data=str(tiny_synthetic),
        out=str(tmp_path / "run"),
        family="yolo26",
        imgsz=64,
        epochs=1,
        batch=4,
        optimizer="sgd",
        weight_decay=0.0,
        ema=False,
        init_weights=str(tmp_path / "start.keras"),
        lr0=0.01,
    )
    Trainer(config).fit()
    trained = load_keras_model(tmp_path / "run" / "last.keras")
    for name in ("stem_conv", "neck_out5_m0_psa_attn_h0_q_conv", "head0_cls_pred"):
        np.testing.assert_array_equal(trained.get_layer(name).get_weights()[0], start.get_layer(name).get_weights()[0])
    moved = (
        trained.get_layer("head0_o2o_cls_pred").get_weights()[0]
        - start.get_layer("head0_o2o_cls_pred").get_weights()[0]
    )
    assert np.abs(moved).max() > 0
    heads = {head: find_model_metadata(tmp_path / "run" / f"best_{head}.keras") for head in ("one2one", "one2many")}
    assert {head: (m["head"], m["postprocess"]) for head, m in heads.items()} == {
        "one2one": ("one2one", "topk"),
        "one2many": ("one2many", "nms"),
    }
    assert find_model_metadata(tmp_path / "run" / "best.keras")["head"] == "both"


@pytest.mark.large
@pytest.mark.parametrize("size", [320, 640])
@pytest.mark.parametrize(
    "source, head, export",
    [
        ("best.pt", "one2many", "best_one2many.onnx"),
        ("best_one2many.onnx", "one2many", "best_one2many.onnx"),
        ("best.pt", "one2one", "best.onnx"),
        ("best.onnx", "one2one", "best.onnx"),
    ],
)
def test_both_heads_match_onnx_runtime_on_real_images(size, source, head, export):
    """Acceptance at 320 and 640 for both heads and both source formats: imported at `size`, against ONNX Runtime
    running the shipped export at `size` (its baked anchor constants regenerated, as for the other families) on 8
    PennFudan val images letterboxed as tfyolo evaluates them. One-to-one: tfyolo's top-k against the export's own
    (1, 300, 6) rows, those scoring >= 0.01."""
    ort = pytest.importorskip("onnxruntime")
    from tests.test_ultralytics_import import onnx_at_size
    from tfyolo.data.images import letterbox, read_image_rgb, to_model_input
    from tfyolo.importers.ultralytics_import import import_weights
    from tfyolo.ops.boxes import convert_format
    from tfyolo.ops.nms import NMSConfig
    from tfyolo.ops.topk import top_k_detections

    model, _ = import_weights(shipped(source), input_size=size, head=head)
    session = ort.InferenceSession(onnx_at_size(WEIGHTS / export, size), providers=["CPUExecutionProvider"])
    val = SHARED / "datasets" / "pennfudan"
    paths = [val / line.strip() for line in (val / "val.txt").read_text().split()][:8]
    images = to_model_input(np.stack([letterbox(read_image_rgb(path), size)[0] for path in paths]))
    expected = np.concatenate([session.run(None, {"images": image[None].transpose(0, 3, 1, 2)})[0] for image in images])
    boxes, scores = decoded(model, images)
    if head == "one2many":
        expected = expected.transpose(0, 2, 1)
        np.testing.assert_allclose(boxes * size, convert_format(expected[..., :4], "cxcywh", "xyxy"), atol=1e-3)
        np.testing.assert_allclose(scores, expected[..., 4:], atol=1e-3)
        return
    for image_boxes, image_scores, rows in zip(boxes, scores, expected):
        kept_boxes, kept_scores, _ = top_k_detections(
            image_boxes * size, image_scores, NMSConfig(confidence_threshold=0.01)
        )
        rows = rows[rows[:, 4] > 0.01]
        assert len(kept_scores) == len(rows)
        np.testing.assert_allclose(kept_boxes, rows[:, :4], atol=1e-3)
        np.testing.assert_allclose(kept_scores, rows[:, 4], atol=1e-3)
