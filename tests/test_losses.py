import numpy as np
import pytest

from tfyolo.compat import tf
from tfyolo.losses.box_ops import complete_iou
from tfyolo.losses.task_aligned_assigner import TaskAlignedAssigner
from tfyolo.losses.yolo_loss import YOLOLoss
from tfyolo.ops.anchors import anchor_points


def test_complete_iou_golden():
    # a = (0,0,2,2), b = (1,0,3,2): intersection 1*2 = 2, union 4 + 4 - 2 = 6 -> IoU 1/3.
    # Enclosing box 3x2 -> diagonal^2 = 9 + 4 = 13; centers (1,1) and (2,1) -> distance^2 = 1.
    # Same aspect ratio -> v = 0. CIoU = 1/3 - 1/13 = 0.2564103.
    a = tf.constant([[0.0, 0.0, 2.0, 2.0]])
    b = tf.constant([[1.0, 0.0, 3.0, 2.0]])
    np.testing.assert_allclose(complete_iou(a, b).numpy(), [1 / 3 - 1 / 13], atol=1e-5)
    np.testing.assert_allclose(complete_iou(a, a).numpy(), [1.0], atol=1e-5)
    # Different aspect ratios: a = 2x2, c = (0,0,4,1) 4x1: intersection 2*1 = 2, union 4 + 4 - 2 = 6 -> 1/3;
    # enclosing 4x2 -> 20; centers (1,1), (2,0.5) -> 1.25; v = 4/pi^2 (atan(4) - atan(1))^2 = 0.1475;
    # alpha = v / (v - iou + 1) = 0.18124 -> CIoU = 1/3 - 1.25/20 - 0.1475 * 0.18124.
    c = tf.constant([[0.0, 0.0, 4.0, 1.0]])
    v = 4 / np.pi**2 * (np.arctan(4.0) - np.arctan(1.0)) ** 2
    expected = 1 / 3 - 1.25 / 20 - v * v / (v - 1 / 3 + 1)
    np.testing.assert_allclose(complete_iou(a, c).numpy(), [expected], atol=1e-5)


def _assign(pred_boxes, gt_boxes, gt_classes, top_k=10, score=0.5):
    points, strides = anchor_points(64, (8, 16, 32))
    scores = np.full((1, 84, 2), score, np.float32)
    assigner = TaskAlignedAssigner(num_classes=2, top_k=top_k)
    mask = np.ones((1, len(gt_boxes)), np.float32)
    return [
        t.numpy()
        for t in assigner(
            tf.constant(scores),
            tf.constant(pred_boxes[None], tf.float32),
            tf.constant(points * strides),
            tf.constant([gt_classes], tf.int32),
            tf.constant(np.asarray(gt_boxes, np.float32)[None]),
            tf.constant(mask),
        )
    ]


def test_assigner_picks_anchors_inside_the_box_ranked_by_alignment():
    # One 16x16 box at the origin. Anchor centers strictly inside: stride 8 -> (4,4), (12,4), (4,12), (12,12) =
    # indices 0, 1, 8, 9; stride 16 -> (8,8) = index 64; stride 32's (16,16) lies on the edge, so not inside.
    gt = [[0.0, 0.0, 16.0, 16.0]]
    pred = np.tile(np.array(gt, np.float32), (84, 1))
    # Anchor 9 predicts (8,8,24,24): IoU 64/448 = 1/7, center distance^2 128 over diagonal^2 1152 -> CIoU 2/63.
    pred[9] = [8, 8, 24, 24]
    boxes, scores, foreground = _assign(pred, gt, [1])
    assert sorted(np.nonzero(foreground[0])[0].tolist()) == [0, 1, 8, 9, 64]
    np.testing.assert_allclose(scores[0, [0, 1, 8, 64], 1], 1.0, atol=1e-4)  # metric / best metric * best IoU 1
    # Anchor 9: (0.5^0.5 * (2/63)^6) / (0.5^0.5 * 1) = (2/63)^6 ~ 1.03e-9.
    np.testing.assert_allclose(scores[0, 9, 1], (2 / 63) ** 6, rtol=1e-2)
    assert scores[0, :, 0].max() == 0.0  # the other class never gets a target
    np.testing.assert_allclose(boxes[0, 0], gt[0])
    # With top_k = 4 the poorly aligned anchor 9 is left out.
    _, _, foreground = _assign(pred, gt, [1], top_k=4)
    assert sorted(np.nonzero(foreground[0])[0].tolist()) == [0, 1, 8, 64]


def test_anchor_claimed_twice_keeps_the_box_it_overlaps_most():
    # Both boxes contain anchor 0's center (4,4); predictions equal box A everywhere, so IoU(A) = 1 > IoU(B).
    box_a, box_b = [0.0, 0.0, 16.0, 16.0], [0.0, 0.0, 24.0, 12.0]
    pred = np.tile(np.array([box_a], np.float32), (84, 1))
    boxes, scores, foreground = _assign(pred, [box_a, box_b], [0, 1])
    assert foreground[0, 0]
    np.testing.assert_allclose(boxes[0, 0], box_a)
    assert scores[0, 0, 0] > 0 and scores[0, 0, 1] == 0


def _two_bin_logits(distance, reg_max=16):
    """Logits whose softmax puts (1 - f) on bin floor(d) and f on the next: expectation exactly d."""
    logits = np.full(reg_max, -1e4, np.float32)
    low = int(np.floor(distance))
    logits[low] = np.log(max(1.0 - (distance - low), 1e-30))
    logits[low + 1] = np.log(max(distance - low, 1e-30))
    return logits


def test_loss_of_predictions_that_match_the_ground_truth():
    """Every anchor inside the box predicts the box exactly, with the right class: the box loss is 0, the DFL
    is the entropy of each side's two-bin split (its minimum), the class loss is what logits of +-10 leave."""
    loss_fn = YOLOLoss(num_classes=2, input_size=64)
    box = np.array([10.0, 10.0, 30.0, 26.0])  # contains 8 anchor points: all of them fit in the top 10
    gt_boxes = tf.constant([[box, [0.0, 0.0, 0.0, 0.0]]], tf.float32)
    gt_classes = tf.constant([[1, 0]], tf.int32)
    gt_mask = tf.constant([[1.0, 0.0]])
    points, strides = anchor_points(64, (8, 16, 32))
    pixels = points * strides
    inside = np.all((pixels > box[:2]) & (pixels < box[2:]), axis=1)
    assert inside.sum() == 8
    distribution = np.zeros((1, 84, 64), np.float32)
    class_logits = np.full((1, 84, 2), -10.0, np.float32)
    entropies = []
    for anchor in np.where(inside)[0]:
        distances = np.r_[pixels[anchor] - box[:2], box[2:] - pixels[anchor]] / strides[anchor]
        distribution[0, anchor] = np.concatenate([_two_bin_logits(d) for d in distances])
        class_logits[0, anchor, 1] = 10.0
        fractions = distances - np.floor(distances)
        side_entropy = -sum(p * np.log(p) for f in fractions for p in (f, 1 - f) if p > 0) / 4
        entropies.append(side_entropy)
    total, parts = loss_fn(tf.constant(distribution), tf.constant(class_logits), gt_boxes, gt_classes, gt_mask)
    assert parts["box"].numpy() == pytest.approx(0.0, abs=1e-5)
    assert parts["dfl"].numpy() == pytest.approx(1.5 * np.mean(entropies), rel=1e-4)
    # BCE of a logit 10 against its label is log(1 + e^-10) = 4.54e-5 for each of the 84 x 2 entries, summed and
    # divided by the 8 foreground anchors' target weight, times the class gain 0.5.
    assert parts["class"].numpy() == pytest.approx(0.5 * 168 * np.log1p(np.exp(-10.0)) / 8, rel=1e-3)

    random = np.random.default_rng(0)
    noisy = tf.constant(random.normal(size=(1, 84, 64)), tf.float32)
    noisy_total, _ = loss_fn(
        noisy, tf.constant(random.normal(size=(1, 84, 2)) - 4, tf.float32), gt_boxes, gt_classes, gt_mask
    )
    assert np.isfinite(noisy_total.numpy()) and noisy_total.numpy() > total.numpy()
    # Empty image: only the class loss (pushing every score down) remains.
    _, parts_empty = loss_fn(noisy, tf.constant(class_logits), gt_boxes, gt_classes, tf.zeros_like(gt_mask))
    assert parts_empty["box"].numpy() == 0.0 and parts_empty["dfl"].numpy() == 0.0


@pytest.mark.parametrize("target, expected_left_weight", [(3.3, 0.7), (0.0, 1.0), (14.5, 0.5)])
def test_distribution_focal_loss_weights(target, expected_left_weight):
    # With logits that put all mass on two bins in the right proportion the DFL equals their entropy.
    left = int(np.floor(target))
    logits = np.full((1, 1, 1, 16), -1e4, np.float32)
    logits[..., left] = np.log(expected_left_weight)
    if expected_left_weight < 1:
        logits[..., left + 1] = np.log(1 - expected_left_weight)
    loss = YOLOLoss.distribution_focal_loss(tf.constant(logits), tf.constant([[[target]]], tf.float32)).numpy()
    p = expected_left_weight
    entropy = -(p * np.log(p) + ((1 - p) * np.log(1 - p) if p < 1 else 0.0))
    np.testing.assert_allclose(loss, [[entropy]], atol=1e-4)
