"""The mask loss against a numpy oracle written from its definition, on hand-made 4 x 4 prototype maps."""

import numpy as np

from tfyolo.compat import tf
from tfyolo.losses.segment_loss import SegmentLoss
from tfyolo.losses.task_aligned_assigner import TaskAlignedAssigner
from tfyolo.ops.anchors import anchor_points

INPUT = 16  # input side; the prototypes are 4 x 4, so one prototype pixel is 4 input pixels


def oracle(coefficients, prototypes, gt_masks, target_boxes, assigned, foreground, gain=7.5):
    """Per positive: BCE summed over the prototype pixels (r, c) with x1 <= c < x2, y1 <= r < y2, over the box
    area in prototype pixels; the mean over positives, times the gain."""
    scale = prototypes.shape[2] / INPUT
    losses = []
    for b, a in zip(*np.nonzero(foreground)):
        logits = prototypes[b] @ coefficients[b, a]
        label = gt_masks[b, assigned[b, a]]
        bce = np.maximum(logits, 0) - logits * label + np.log1p(np.exp(-np.abs(logits)))
        x1, y1, x2, y2 = target_boxes[b, a] * scale
        total = 0.0
        for r in range(logits.shape[0]):
            for c in range(logits.shape[1]):
                if x1 <= c < x2 and y1 <= r < y2:
                    total += bce[r, c]
        losses.append(total / ((x2 - x1) * (y2 - y1)))
    return gain * np.mean(losses) if losses else 0.0


def case():
    """Two images, three anchors each, two objects each; coefficient 0 reads a signed mask, 1 a constant map."""
    gt_masks = np.zeros((2, 2, 4, 4), np.float32)
    gt_masks[0, 0, 0:2, 0:2] = 1  # top-left 2x2
    gt_masks[0, 1, 1:4, 2:4] = 1
    gt_masks[1, 0, 2:4, 0:3] = 1
    gt_masks[1, 1, 0:1, 0:4] = 1
    boxes = np.array(
        [[[0, 0, 8, 8], [8, 4, 16, 16]], [[0, 8, 12, 16], [0, 0, 16, 4]]], np.float32
    )  # each mask's extent in input pixels
    assigned = np.array([[0, 1, 0], [1, 0, 0]], np.int32)
    foreground = np.array([[True, True, False], [True, True, False]])
    target_boxes = np.take_along_axis(boxes, assigned[..., None], axis=1)
    return gt_masks, target_boxes, assigned, foreground


def run(coefficients, prototypes, gt_masks, target_boxes, assigned, foreground):
    loss = SegmentLoss(INPUT)
    args = [coefficients, prototypes, gt_masks, target_boxes, assigned, foreground]
    return float(loss(*[tf.constant(a) for a in args]).numpy())


def perfect_prototypes(gt_masks, assigned, foreground):
    """Prototype 0 of each image is +-30 on the mask of its first positive's object, so its logits are right."""
    prototypes = np.zeros((2, 4, 4, 2), np.float32)
    for b in range(2):
        first = assigned[b, np.nonzero(foreground[b])[0][0]]
        prototypes[b, ..., 0] = 30.0 * (2 * gt_masks[b, first] - 1)
    prototypes[..., 1] = 1.0
    return prototypes


def test_perfect_logits_give_a_loss_near_zero():
    gt_masks, target_boxes, assigned, foreground = case()
    foreground = foreground & (np.arange(3) == 0)[None]  # only the positives the prototypes were made for
    prototypes = perfect_prototypes(gt_masks, assigned, foreground)
    coefficients = np.tile(np.array([1.0, 0.0], np.float32), (2, 3, 1))
    loss = run(coefficients, prototypes, gt_masks, target_boxes, assigned, foreground)
    assert loss < 1e-9
    assert oracle(coefficients, prototypes, gt_masks, target_boxes, assigned, foreground) < 1e-9


def test_a_constant_logit_gives_the_bce_arithmetic():
    # Logit 0 everywhere: every pixel costs ln 2 whatever its label, and the box-area normalization makes each
    # positive cost exactly ln 2, so the loss is 7.5 ln 2.
    gt_masks, target_boxes, assigned, foreground = case()
    prototypes = np.ones((2, 4, 4, 2), np.float32)
    zero = np.zeros((2, 3, 2), np.float32)
    np.testing.assert_allclose(
        run(zero, prototypes, gt_masks, target_boxes, assigned, foreground), 7.5 * np.log(2), rtol=1e-6
    )
    # Logit 2: a mask pixel costs ln(1 + e^-2), a background one ln(1 + e^2). Image 0's first positive covers its
    # 2x2 box with its object's mask: all 4 pixels are foreground.
    two = np.zeros((2, 3, 2), np.float32)
    two[..., 1] = 2.0
    got = run(two, prototypes, gt_masks, target_boxes, assigned, foreground)
    np.testing.assert_allclose(got, oracle(two, prototypes, gt_masks, target_boxes, assigned, foreground), rtol=1e-5)
    only_first = foreground & (np.arange(3) == 0)[None] & (np.arange(2) == 0)[:, None]
    np.testing.assert_allclose(
        run(two, prototypes, gt_masks, target_boxes, assigned, only_first), 7.5 * np.log1p(np.exp(-2.0)), rtol=1e-6
    )


def test_random_case_matches_the_oracle():
    rng = np.random.default_rng(0)
    gt_masks, target_boxes, assigned, foreground = case()
    coefficients = rng.normal(size=(2, 3, 2)).astype(np.float32)
    prototypes = rng.normal(size=(2, 4, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(
        run(coefficients, prototypes, gt_masks, target_boxes, assigned, foreground),
        oracle(coefficients, prototypes, gt_masks, target_boxes, assigned, foreground),
        rtol=1e-5,
    )


def test_pixels_outside_the_box_and_background_anchors_do_not_count():
    rng = np.random.default_rng(1)
    gt_masks, target_boxes, assigned, foreground = case()
    coefficients = rng.normal(size=(2, 3, 2)).astype(np.float32)
    prototypes = rng.normal(size=(2, 4, 4, 2)).astype(np.float32)
    before = run(coefficients, prototypes, gt_masks, target_boxes, assigned, foreground)
    # Image 0 object 0's box is the 2x2 top-left corner: rewriting its mask and logits elsewhere changes nothing.
    changed_masks, changed_prototypes = gt_masks.copy(), prototypes.copy()
    only_first = foreground & (np.arange(3) == 0)[None] & (np.arange(2) == 0)[:, None]
    before_first = run(coefficients, prototypes, gt_masks, target_boxes, assigned, only_first)
    changed_masks[0, 0, 2:, :] = 1 - changed_masks[0, 0, 2:, :]
    changed_prototypes[0, 2:, :, :] += 5.0
    after_first = run(coefficients, changed_prototypes, changed_masks, target_boxes, assigned, only_first)
    np.testing.assert_allclose(after_first, before_first, rtol=1e-6)
    # A background anchor's coefficients are never read.
    changed_coefficients = coefficients.copy()
    changed_coefficients[:, 2] = 100.0
    np.testing.assert_allclose(
        run(changed_coefficients, prototypes, gt_masks, target_boxes, assigned, foreground), before, rtol=1e-6
    )


def test_no_positive_gives_zero_and_a_gradient():
    gt_masks, target_boxes, assigned, _ = case()
    coefficients = tf.Variable(np.ones((2, 3, 2), np.float32))
    with tf.GradientTape() as tape:
        loss = SegmentLoss(INPUT)(
            coefficients, tf.ones((2, 4, 4, 2)), gt_masks, target_boxes, assigned, tf.zeros((2, 3), tf.bool)
        )
    assert float(loss) == 0.0
    assert np.all(np.isfinite(tape.gradient(loss, coefficients).numpy()))


def test_the_assigner_names_each_positive_object():
    points, strides = anchor_points(64, (8, 16, 32))
    gt_boxes = np.array([[[0, 0, 24, 24], [32, 32, 64, 64]]], np.float32)
    pred = np.tile(np.array([[0, 0, 24, 24]], np.float32), (84, 1))
    pred[points[:, 0] * strides[:, 0] > 32] = [32, 32, 64, 64]
    outputs = TaskAlignedAssigner(num_classes=1, top_k=10)(
        tf.fill((1, 84, 1), 0.5),
        tf.constant(pred[None]),
        tf.constant(points * strides),
        tf.zeros((1, 2), tf.int32),
        tf.constant(gt_boxes),
        tf.ones((1, 2)),
        with_indices=True,
    )
    target_boxes, _, foreground, assigned = (t.numpy() for t in outputs)
    assert foreground.any()
    np.testing.assert_array_equal(target_boxes[foreground], gt_boxes[0][assigned[foreground]])
    assert set(assigned[foreground]) == {0, 1}
