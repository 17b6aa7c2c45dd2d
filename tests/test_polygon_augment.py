"""Outlines follow the boxes through letterbox, mosaic, random affine and flip; their masks land where the
arithmetic says."""

import dataclasses

import numpy as np
import pytest

from tfyolo.data.augment import NO_AUGMENTATION, AugmentConfig, training_sample, training_sample_with_polygons
from tfyolo.data.detection_dataset import Sample
from tfyolo.data.pipeline import pad_boxes, padded_masks, training_dataset
from tfyolo.data.polygons import polygon_boxes, polygon_masks, transform_polygons

SIZE = 32


class SquareImages:
    """A dataset stand-in: `count` grey SIZE x SIZE images, each with the given normalized boxes."""

    def __init__(self, boxes, count=4, with_polygons=True):
        boxes = np.asarray(boxes, np.float32)
        polygons = tuple(corners(box) for box in boxes) if with_polygons else None
        self.samples = [
            Sample(f"{i}.png", np.zeros(len(boxes), np.int32), boxes, polygons=polygons) for i in range(count)
        ]

    def __len__(self):
        return len(self.samples)

    def load_resized(self, index, size, cache=True):
        return np.full((size, size, 3), 100, np.uint8), (SIZE, SIZE)


def corners(box):
    x1, y1, x2, y2 = box
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32)


def iou(a, b):
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


def test_a_square_mask_fills_exactly_its_prototype_pixels():
    mask = polygon_masks([corners([0, 0, 8, 8]), corners([8, 12, 20, 32])], SIZE, 4)
    expected = np.zeros((2, 8, 8), np.uint8)
    expected[0, 0:2, 0:2] = 1
    expected[1, 3:8, 2:5] = 1
    np.testing.assert_array_equal(mask, expected)


def test_a_box_is_the_visible_extent_of_its_moved_outline():
    # A diamond about (8, 8) turned 45 degrees is a square of half side 4 / sqrt(2): its box is 8 -+ 2.83, tighter
    # than its old box's turned corners (8 -+ 5.66).
    diamond = np.array([[8, 4], [12, 8], [8, 12], [4, 8]], np.float32)
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    turn = np.array([[c, -s, 8 - 8 * c + 8 * s], [s, c, 8 - 8 * s - 8 * c]])
    half = 4 / np.sqrt(2)
    np.testing.assert_allclose(
        polygon_boxes(transform_polygons([diamond], turn), 16, 16), [[8 - half] * 2 + [8 + half] * 2], atol=1e-5
    )
    # Cut by the image: a square from -4 to 8 keeps 0..8; a triangle poking out of the right side keeps its
    # part left of x = 16, whose top is where its edge crosses it.
    triangle = np.array([[10, 10], [22, 4], [22, 16]], np.float32)
    np.testing.assert_allclose(
        polygon_boxes([corners([-4, -4, 8, 8]), triangle], 16, 16), [[0, 0, 8, 8], [10, 7, 16, 13]], atol=1e-5
    )
    assert np.all(polygon_boxes([corners([20, 20, 30, 30])], 16, 16) == 0)


def test_a_flip_mirrors_outline_box_and_mask():
    flip = dataclasses.replace(NO_AUGMENTATION, fliplr=1.0)
    dataset = SquareImages([[0.25, 0.25, 0.5, 0.5]])
    _, boxes, _, polygons = training_sample_with_polygons(dataset, 0, SIZE, np.random.default_rng(0), flip, False)
    np.testing.assert_allclose(boxes, [[16, 8, 24, 16]])
    np.testing.assert_allclose(polygons[0][:, 0], [24, 16, 16, 24])
    mask = polygon_masks(polygons, SIZE, 4)[0]
    assert mask[2:4, 4:6].all() and mask.sum() == 4


def test_a_random_affine_moves_the_outline_as_its_drawn_zoom_and_shift_say():
    config = dataclasses.replace(NO_AUGMENTATION, scale=0.5, translate=0.1)
    dataset = SquareImages([[0.25, 0.25, 0.5, 0.5]])
    _, boxes, _, polygons = training_sample_with_polygons(dataset, 0, SIZE, np.random.default_rng(3), config, False)
    draws = np.random.default_rng(3)  # the same draws: zoom, then the x and y shifts
    zoom = draws.uniform(0.5, 1.5)
    shift = np.array([draws.uniform(0.4, 0.6), draws.uniform(0.4, 0.6)]) * SIZE
    expected = (corners([8, 8, 16, 16]) - SIZE / 2) * zoom + shift
    np.testing.assert_allclose(polygons[0], expected, atol=1e-4)
    np.testing.assert_allclose(boxes[0], [*expected.min(axis=0), *expected.max(axis=0)], atol=1e-4)
    box_mask = polygon_masks([corners(boxes[0])], SIZE, 4)[0]
    assert iou(polygon_masks(polygons, SIZE, 4)[0], box_mask) > 0.99


@pytest.mark.parametrize("seed", range(6))
def test_outlines_follow_the_boxes_through_mosaic_affine_and_flip(seed):
    # Square outlines equal to their boxes: the boxes derived from them are the detection pipeline's boxes, drawn
    # with the same random numbers, and each one's mask is its box's.
    boxes = [[0.1, 0.1, 0.6, 0.5], [0.5, 0.4, 0.9, 0.95]]
    config = AugmentConfig(hsv_h=0.0, hsv_s=0.0, hsv_v=0.0)
    plain = training_sample(
        SquareImages(boxes, with_polygons=False), 0, SIZE, np.random.default_rng(seed), config, True
    )
    outlined = training_sample_with_polygons(SquareImages(boxes), 0, SIZE, np.random.default_rng(seed), config, True)
    np.testing.assert_array_equal(plain[0], outlined[0])
    np.testing.assert_allclose(outlined[1], plain[1], atol=1e-3)
    np.testing.assert_array_equal(outlined[2], plain[2])
    assert len(outlined[3]) == len(outlined[1])
    for box, mask in zip(outlined[1], polygon_masks(outlined[3], SIZE, 4)):
        assert iou(mask, polygon_masks([corners(box)], SIZE, 4)[0]) == 1.0


def test_training_batches_carry_each_kept_box_mask_at_prototype_resolution():
    boxes = [[0.1, 0.1, 0.6, 0.5], [0.5, 0.4, 0.9, 0.95]]
    config = AugmentConfig(hsv_h=0.0, hsv_s=0.0, hsv_v=0.0)
    args = (SIZE, 2, 12, config, True, 7, 0)
    plain = next(iter(training_dataset(SquareImages(boxes, with_polygons=False), *args)))
    images, gt_boxes, gt_classes, gt_mask, gt_masks = next(iter(training_dataset(SquareImages(boxes), *args, 4)))
    assert gt_masks.shape == (2, 12, 8, 8) and gt_masks.dtype == np.float32
    np.testing.assert_array_equal(images.numpy(), plain[0].numpy())
    np.testing.assert_allclose(gt_boxes.numpy(), plain[1].numpy(), atol=1e-3)
    np.testing.assert_array_equal(gt_mask.numpy(), plain[3].numpy())
    for image_boxes, real, masks in zip(gt_boxes.numpy(), gt_mask.numpy(), gt_masks.numpy()):
        for box, is_real, mask in zip(image_boxes, real, masks):
            expected = polygon_masks([corners(box)], SIZE, 4)[0] if is_real else np.zeros((8, 8))
            np.testing.assert_array_equal(mask, expected)


def test_padded_masks_follow_the_boxes_kept_when_there_are_too_many():
    boxes = np.array([[0, 0, 4, 4], [0, 0, 16, 16], [0, 0, 8, 8]], np.float32)
    masks = padded_masks(boxes, [corners(box) for box in boxes], SIZE, 2, 4)
    kept_boxes, _ = pad_boxes(boxes, np.zeros(3, np.int32), 2)
    np.testing.assert_array_equal(kept_boxes, boxes[[1, 2]])
    np.testing.assert_array_equal(masks.sum(axis=(1, 2)), [16, 4])
