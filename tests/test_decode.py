import numpy as np

from tfyolo.ops.anchors import anchor_points
from tfyolo.ops.decode import decode_predictions


def test_anchor_points_order():
    # 64px: 8x8 cells at stride 8, 4x4 at 16, 2x2 at 32 = 84 anchors, level by level, row-major.
    points, strides = anchor_points(64, (8, 16, 32))
    assert points.shape == (84, 2) and strides.shape == (84, 1)
    np.testing.assert_array_equal(
        points[[0, 1, 8, 64, 80]], [[0.5, 0.5], [1.5, 0.5], [0.5, 1.5], [0.5, 0.5], [0.5, 0.5]]
    )
    np.testing.assert_array_equal(strides[[0, 63, 64, 79, 80, 83], 0], [8, 8, 16, 16, 32, 32])


def test_decode_golden_values():
    reg_max, size = 16, 64
    box = np.zeros((1, 84, 4 * reg_max), np.float32)  # all-zero logits: uniform over 0..15, expectation 7.5
    # Anchor 0 (cell center (0.5, 0.5) of stride 8): every side sure of bin 2 -> distance 2.0 exactly (softmax of
    # 100 against zeros is 1 to float precision). Box = (0.5 -+ 2) * 8 = (-12, -12, 20, 20) px -> / 64.
    box[0, 0].reshape(4, reg_max)[:, 2] = 100.0
    # Anchor 1 (center (1.5, 0.5)): bins 3 and 4 equally likely -> 3.5; x: (1.5 -+ 3.5) * 8 = (-16, 40),
    # y: (0.5 -+ 3.5) * 8 = (-24, 32).
    sides = np.full((4, reg_max), -1e4, np.float32)
    sides[:, 3:5] = 0.0
    box[0, 1] = sides.ravel()
    logits = np.zeros((1, 84, 2), np.float32)
    logits[0, 0] = [0.0, np.log(3.0)]  # sigmoid(0) = 0.5, sigmoid(log 3) = 3 / 4
    boxes, scores = decode_predictions(box, logits, size, reg_max=reg_max)
    np.testing.assert_allclose(boxes[0, 0], np.array([-12, -12, 20, 20]) / 64, atol=1e-6)
    np.testing.assert_allclose(boxes[0, 1], np.array([-16, -24, 40, 32]) / 64, atol=1e-5)
    # Anchor 64 (stride 16, center (0.5, 0.5)), uniform logits -> 7.5: (0.5 -+ 7.5) * 16 = (-112, 128) -> / 64.
    np.testing.assert_allclose(boxes[0, 64], [-1.75, -1.75, 2.0, 2.0], atol=1e-5)
    np.testing.assert_allclose(scores[0, 0], [0.5, 0.75], atol=1e-7)
