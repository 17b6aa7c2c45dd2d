"""QAT by distillation: its loss against hand arithmetic, and its promise (the weights kept are the best the held-out
images saw, the start included)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfyolo.models.detect_head import BOX_OUTPUT, CLASS_OUTPUT
from tfyolo.qat.distillation import Distillation, DistillationConfig, distill_qat_model, distillation_loss


def outputs(box, classes):
    return {BOX_OUTPUT: tf.constant(box, tf.float32), CLASS_OUTPUT: tf.constant(classes, tf.float32)}


def test_identical_outputs_cost_only_the_teacher_s_entropy():
    # Logits 0: every class probability is 1/2, whose binary cross-entropy with itself is ln 2; 3 classes per anchor.
    same = outputs(np.zeros((1, 2, 64)), np.zeros((1, 2, 3)))
    total, class_term, box_term, other_term = distillation_loss(same, same)
    assert float(class_term) == pytest.approx(3 * math.log(2), rel=1e-6)
    assert float(box_term) == pytest.approx(0.0, abs=1e-7) and float(other_term) == 0.0
    assert float(total) == pytest.approx(3 * math.log(2), rel=1e-6)


def test_distances_are_weighted_by_the_teacher_s_best_class():
    # reg_max 1 (YOLO26): per anchor the L1 distance of its 4 distances, weighted by the teacher's best probability.
    # Anchor 0: teacher sure (logit +inf-ish -> weight 1), distances off by 1 + 1 + 0 + 0 = 2. Anchor 1: logit 0
    # (weight 1/2), off by 4 x 3 = 12. Weighted mean: (1 x 2 + 0.5 x 12) / (1 + 0.5) = 8 / 1.5.
    teacher = outputs(np.zeros((1, 2, 4)), [[[30.0, -30.0], [0.0, -30.0]]])
    student = outputs([[[1, 1, 0, 0], [3, 3, 3, 3]]], [[[30.0, -30.0], [0.0, -30.0]]])
    _, _, box_term, _ = distillation_loss(student, teacher)
    assert float(box_term) == pytest.approx(8 / 1.5, rel=1e-5)


def test_dfl_distributions_are_compared_by_kl_divergence():
    # reg_max 2: each side a 2-bin distribution. Teacher (1/2, 1/2) on every side; student logits (ln 3, 0): (3/4, 1/4).
    # KL per side: 1/2 ln((1/2)/(3/4)) + 1/2 ln((1/2)/(1/4)) = 1/2 ln(4/3); 4 sides; one anchor, weight cancels.
    teacher = outputs(np.zeros((1, 1, 8)), [[[5.0]]])
    student = outputs([[[math.log(3), 0.0] * 4]], [[[5.0]]])
    _, _, box_term, _ = distillation_loss(student, teacher)
    assert float(box_term) == pytest.approx(4 * 0.5 * math.log(4 / 3), rel=1e-5)


@pytest.fixture(scope="module")
def seeded(tiny_float_run, tiny_synthetic):
    from tfyolo.data.calibration_images import load_calibration_images
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.qat.qat_model import build_qat_model, seed_quantization_ranges

    float_model = load_keras_model(tiny_float_run)
    images, _ = load_calibration_images(str(tiny_synthetic), 64, 10, seed=0)
    qat_model = build_qat_model(float_model)
    seed_quantization_ranges(qat_model, float_model, images)
    return qat_model, float_model, images


def test_the_weights_kept_are_the_best_the_held_out_images_saw(seeded):
    # A rate far too high: training moves the weights a long way, so the epochs' losses differ from the start's.
    qat_model, float_model, images = seeded
    start = qat_model.get_weights()
    distillation = Distillation(qat_model, float_model, images, DistillationConfig(epochs=2, learning_rate=0.05))
    try:
        history = distillation.run()
        assert [row["epoch"] for row in history] == [0, 1, 2]
        assert len({round(row["held_out_loss"], 6) for row in history}) > 1, "training must have moved the model"
        best = min(row["held_out_loss"] for row in history)
        assert distillation.held_out_loss() == pytest.approx(best, rel=1e-5)
        assert sum(row["best"] for row in history[1:]) == sum(
            row["held_out_loss"] < min(r["held_out_loss"] for r in history[: row["epoch"]]) for row in history[1:]
        )
    finally:
        qat_model.set_weights(start)


def test_the_held_out_images_are_never_learned_from(seeded):
    qat_model, float_model, images = seeded
    distillation = Distillation(qat_model, float_model, images, DistillationConfig(holdout=0.3))
    assert len(distillation.held_out) == 3 and len(distillation.train) == 7
    held = {image.tobytes() for image in distillation.held_out}
    assert not held & {image.tobytes() for image in distillation.train}


def test_one_image_is_refused(seeded):
    qat_model, float_model, images = seeded
    with pytest.raises(ValueError, match="at least 2 images"):
        Distillation(qat_model, float_model, images[:1])


def distilled(tiny_float_run, seeded, tmp_path):
    """One epoch of distillation QAT saved to a file: (its path, its history, the images it learned from)."""
    _, _, images = seeded
    out = tmp_path / "distilled.h5"
    return out, distill_qat_model(tiny_float_run, images, out, DistillationConfig(epochs=1)), images


@pytest.mark.large
def test_the_distilled_model_is_saved_with_its_facts(tiny_float_run, seeded, tmp_path):
    """Large: distill_qat_model builds, seeds and trains a QAT model of its own (40-55 s on two cores); the fast
    tests here exercise the Distillation it runs on the module's seeded model."""
    from tfyolo.metadata import find_model_metadata
    from tfyolo.qat.qat_io import load_any_detector

    out, history, images = distilled(tiny_float_run, seeded, tmp_path)
    metadata = find_model_metadata(out)
    assert metadata["qat"] is True and metadata["qat_distillation"]["history"] == history
    assert metadata["qat_distillation"]["images"] == len(images)
    assert set(load_any_detector(out)(images[:1], training=False)) == {BOX_OUTPUT, CLASS_OUTPUT}


@pytest.mark.large
def test_the_distilled_model_converts_to_integer_only(tiny_float_run, seeded, tmp_path):
    """Large, as the test above; the fast suite converts QAT models in test_qat.py."""
    from tfyolo.quantization.isolated import convert_isolated
    from tfyolo.quantization.recipes_dir import resolve_recipe
    from tfyolo.tflite_runtime import inspect_tflite

    out, _, _ = distilled(tiny_float_run, seeded, tmp_path)
    content = convert_isolated(str(out), resolve_recipe("int8_tflite_int8io"))
    assert inspect_tflite(content)["float_compute_ops"] == []
