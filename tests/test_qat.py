"""Quantization-aware training on a tiny detector: wrap, train, save, reload, convert to integer-only TFLite."""

import numpy as np
import pytest

from tfyolo.compat import tf
from tfyolo.models.model_config import ModelConfig
from tfyolo.models.yolo_detector import BOX_OUTPUT, CLASS_OUTPUT, build_yolo_detector
from tfyolo.qat.qat_model import build_qat_model, has_float_layers, is_qat_model, seed_quantization_ranges


@pytest.fixture(scope="module")
def float_run(tiny_float_run):
    return tiny_float_run


@pytest.fixture(scope="module")
def qat_run(float_run, tiny_synthetic, tmp_path_factory):
    """QAT fine-tune through the trainer: 19 train images at batch 8 -> 2 steps."""
    from tfyolo.qat.qat_training import trainer_for
    from tfyolo.training.train_config import TrainConfig

    out = tmp_path_factory.mktemp("qat")
    config = TrainConfig(
        data=str(tiny_synthetic),
        out=str(out),
        imgsz=64,
        epochs=1,
        batch=8,
        lr0=1e-4,
        mosaic=0.0,
        close_mosaic=0,
        warmup_epochs=0.0,
        qat_from=str(float_run),
        qat_calibration_images=4,
    )
    history = trainer_for(config).fit()
    return out, history


@pytest.mark.large  # the QAT fine-tune they share takes 60-80 s on 2 cores
def test_qat_training_steps_are_finite_and_the_model_reloads(qat_run):
    from tfyolo.qat.qat_io import load_any_detector

    out, history = qat_run
    assert np.isfinite(history[-1]["loss"]) and history[-1]["map50_95"] is not None
    model = load_any_detector(out / "best.h5")
    assert is_qat_model(model) and not has_float_layers(model)


@pytest.mark.large  # the QAT fine-tune they share takes 60-80 s on 2 cores
def test_qat_keeps_its_start_unless_an_epoch_beats_it_on_val(qat_run):
    from tfyolo.metadata import find_model_metadata

    out, history = qat_run
    start, trained = history
    # Epoch 0 is the seeded model before any step: scored, no training figures, the same keys as an epoch's row.
    assert start["epoch"] == 0 and start["map50_95"] is not None and start["loss"] is None
    assert set(start) == set(trained) and trained["epoch"] == 1
    # best.h5 is whichever scored higher (the start on a tie), and says so.
    best = start if start["map50_95"] >= trained["map50_95"] else trained
    metadata = find_model_metadata(out / "best.h5")
    assert metadata["epoch"] == metadata["best_epoch"] == best["epoch"]
    assert metadata["val_metrics"]["map50_95"] == pytest.approx(best["map50_95"])
    assert trained["best"] == (best is trained)


def test_gradients_through_fake_quant_are_finite(float_run):
    from tfyolo.losses.yolo_loss import YOLOLoss
    from tfyolo.models.model_io import load_keras_model

    model = build_qat_model(load_keras_model(float_run))
    images = tf.random.uniform((2, 64, 64, 3), seed=1)
    boxes = tf.constant([[[8.0, 8.0, 40.0, 40.0]], [[20.0, 10.0, 60.0, 50.0]]])
    loss_fn = YOLOLoss(num_classes=2, input_size=64)
    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        loss, _ = loss_fn(outputs[BOX_OUTPUT], outputs[CLASS_OUTPUT], boxes, tf.constant([[0], [1]]), tf.ones((2, 1)))
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in gradients)
    assert all(np.isfinite(g.numpy()).all() for g in gradients)
    assert sum(float(tf.reduce_sum(tf.abs(g))) > 0 for g in gradients) > 0.9 * len(gradients)


def _moving_average_oracle(values, smoothing=0.95):
    """ai-edge-quantizer's moving average in closed form: the first of n values weighs smoothing^(n-1), value i
    (i >= 1) weighs (1 - smoothing) * smoothing^(n-1-i); the weights sum to 1."""
    n = len(values)
    weights = [smoothing ** (n - 1)] + [(1 - smoothing) * smoothing ** (n - 1 - i) for i in range(1, n)]
    return float(np.dot(weights, values))


def test_seeded_ranges_follow_the_default_ptq_rule(float_run, tiny_synthetic):
    from tfyolo.compat import keras
    from tfyolo.data.calibration_images import load_calibration_images
    from tfyolo.models.model_io import load_keras_model

    float_model = load_keras_model(float_run)
    images, _ = load_calibration_images(tiny_synthetic, 64, 6)
    # One epoch leaves every box prediction above zero and every class logit below it, where any rule reads 0 at
    # that end: centre them on zero so that the extremes and the average differ at both ends of the boxes and at
    # the top of the class logits.
    for layer in float_model.layers:
        if layer.name.endswith(("_box_pred", "_cls_pred")):
            outputs = keras.Model(float_model.input, layer.output)(images).numpy()
            layer.bias.assign(layer.bias - float(np.median(outputs)))
    model = build_qat_model(float_model)
    assert seed_quantization_ranges(model, float_model, images) > 100
    seeded = {}
    for layer in model.layers:
        variables = {v.name.split("/")[-1].split(":")[0]: v for v in layer.weights}
        found = [prefix for prefix in ("output", "post_activation") if f"{prefix}_min" in variables]
        if found and hasattr(layer, "layer"):
            seeded[layer.layer.name] = (variables[f"{found[0]}_min"].numpy(), variables[f"{found[0]}_max"].numpy())
    # The oracle: each float layer's own outputs image by image, summarized by name: the prediction convs and
    # the concatenations of their levels keep their extremes (the class logits only at the top), every other
    # layer the moving average; zero always inside, as an integer zero point needs.
    names = list(seeded)
    probe = keras.Model(float_model.input, [float_model.get_layer(name).output for name in names])
    per_image = [[output.numpy() for output in probe(image[None])] for image in images]
    box_layers = [n for n in names if n.endswith("_box_pred") or n == "box_distribution"]
    class_layers = [n for n in names if n.endswith("_cls_pred") or n == "class_logits"]
    assert len(box_layers) == len(class_layers) == 4
    widened, lowered = [0, 0], 0
    for index, name in enumerate(names):
        minima = [outputs[index].min() for outputs in per_image]
        maxima = [outputs[index].max() for outputs in per_image]
        low = min(minima) if name in box_layers else _moving_average_oracle(minima)
        high = max(maxima) if name in box_layers + class_layers else _moving_average_oracle(maxima)
        np.testing.assert_allclose(seeded[name][0], min(0.0, low), rtol=1e-4, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(seeded[name][1], max(0.0, high), rtol=1e-4, atol=1e-6, err_msg=name)
        widened[name in class_layers] += high > max(0.0, _moving_average_oracle(maxima)) + 1e-6
        lowered += low < min(0.0, _moving_average_oracle(minima)) - 1e-6
    # The extremes must differ from the average where the rule takes them (the boxes' ends, the class logits'
    # top), or the test could not tell the rules apart.
    assert widened[False] >= 2 and widened[True] >= 2 and lowered >= 2
    quantize_max = [
        v for layer in model.layers for v in layer.weights if "quantize_layer" in v.name and "max" in v.name
    ]
    assert float(quantize_max[0].numpy()) == 1.0


def test_seeding_without_images_is_one_clear_error():
    from tfyolo.errors import ModelError

    # Checked before either model is touched: a calibration source that yielded nothing names what is missing.
    with pytest.raises(ModelError, match="needs at least one calibration image; received none"):
        seed_quantization_ranges(None, None, np.zeros((0, 64, 64, 3), np.float32))


@pytest.mark.large  # the QAT fine-tune they share takes 60-80 s on 2 cores
def test_qat_model_converts_to_integer_only_and_agrees_with_keras(qat_run, tiny_synthetic):
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.data.pipeline import evaluation_batches
    from tfyolo.evaluation.runners import TFLiteRunner
    from tfyolo.qat.qat_io import load_any_detector
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.isolated import check_artifact
    from tfyolo.quantization.recipes_dir import resolve_recipe

    out, _ = qat_run
    model = load_any_detector(out / "best.h5")
    converted = {}
    # TFLiteConverter reads the learned ranges (the QAT rows of a convert job); no calibration images.
    for name, recipe in (("int8", "int8_tflite"), ("int8_int8io", "int8_tflite_int8io")):
        converted[name] = convert(model, resolve_recipe(recipe))
        assert check_artifact(converted[name], resolve_recipe(recipe))["float_compute_ops"] == []
    dataset = DetectionDataset.from_data_yaml(tiny_synthetic, "val")
    images = next(evaluation_batches(dataset, 64, 4))[1]
    raw = TFLiteRunner(model_content=converted["int8"], num_threads=1).predict_raw(images)
    expected = model(images, training=False)
    # Compared as users see it. The converter folds BatchNorm into the kernels and re-quantizes them, so the int8
    # model is not bit-exact with tfmot's simulation and an error bound on raw logits would be a measurement. But
    # every anchor's decoded box must be the same detection by COCO's criterion (IoU >= 0.5) ...
    from tfyolo.ops.boxes import pairwise_iou
    from tfyolo.ops.decode import decode_predictions

    int8_boxes, _ = decode_predictions(raw[BOX_OUTPUT], raw[CLASS_OUTPUT], 64)
    keras_boxes, _ = decode_predictions(expected[BOX_OUTPUT].numpy(), expected[CLASS_OUTPUT].numpy(), 64)
    ious = np.concatenate([np.diag(pairwise_iou(a * 64, b * 64)) for a, b in zip(int8_boxes, keras_boxes)])
    assert ious.min() >= 0.5
    # ... and the class logits sit on the output's int8 grid (the same range in both), where most values can
    # differ by at most the one rounding step in which the two computations disagree.
    integer_io = TFLiteRunner(model_content=converted["int8_int8io"], num_threads=1)
    step = integer_io.outputs[CLASS_OUTPUT]["quantization"][0]
    assert np.median(np.abs(raw[CLASS_OUTPUT] - expected[CLASS_OUTPUT].numpy())) <= step


@pytest.mark.parametrize(
    "activation, mul_ops", [("silu", "per activation"), pytest.param("relu", 0, marks=pytest.mark.large)]
)
def test_conv_batchnorm_is_folded_in_the_converted_model(activation, mul_ops):
    """BN must fold into CONV_2D: no BN MUL/ADD left, and SiLU shows up as LOGISTIC + MUL, ReLU fused away."""
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.recipe import Recipe
    from tfyolo.tflite_runtime import inspect_tflite

    float_model = build_yolo_detector(ModelConfig(num_classes=2, input_size=64, activation=activation))
    model = build_qat_model(float_model)
    ops = inspect_tflite(convert(model, Recipe(name="int8", mode="int8")))["ops"]
    kinds = {type(layer).__name__ for layer in float_model.layers}
    count = {kind: sum(type(layer).__name__ == kind for layer in float_model.layers) for kind in kinds}
    assert ops["CONV_2D"] == count["Conv2D"]
    assert ops.get("ADD", 0) == count["Add"]  # residual adds only: no BatchNorm offsets
    if activation == "silu":
        assert ops["MUL"] == ops["LOGISTIC"] == count["Activation"]
    else:
        assert "MUL" not in ops and "RELU" not in ops  # fused into CONV_2D


@pytest.mark.large
def test_staged_qat_keeps_the_head_in_float(float_run):
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.isolated import check_artifact
    from tfyolo.quantization.recipe import Recipe

    model = build_qat_model(load_keras_model(float_run), staged=True)
    assert has_float_layers(model)
    head = [layer for layer in model.layers if layer.name.startswith("head")]
    assert head and all(type(layer).__name__ != "QuantizeWrapperV2" for layer in head)
    recipe = Recipe(name="int8", mode="int8")
    inspection = check_artifact(convert(model, recipe), recipe, allow_float=True)
    assert "CONV_2D" in inspection["float_compute_ops"]
