"""A mAP50-95 difference rescored on subsets of the images: a subset is scored exactly as pycocotools scores those
images on their own, and the halves' spread behaves as a standard error."""

import numpy as np
import pytest

from tfyolo.evaluation.coco_metrics import coco_evaluate
from tfyolo.evaluation.image_resampling import difference_spreads, matched_images, resampled_map

NAMES = ["a", "b", "c"]


def _scene(seed, images=12, jitter=6.0, false_positives=3):
    """A COCO ground truth of `images` images with 1-4 boxes each, and detections: every box moved by up to `jitter`
    pixels with a random score, plus `false_positives` random boxes per image."""
    generator = np.random.default_rng(seed)
    truth = {"images": [], "annotations": [], "categories": [{"id": i, "name": n} for i, n in enumerate(NAMES)]}
    detections = []
    for image in range(images):
        truth["images"].append({"id": image, "width": 320, "height": 240, "file_name": f"{image}.jpg"})
        for _ in range(generator.integers(1, 5)):
            x, y = generator.uniform(0, 200), generator.uniform(0, 140)
            w, h = generator.uniform(20, 110), generator.uniform(20, 90)
            category = int(generator.integers(0, len(NAMES)))
            truth["annotations"].append(
                {
                    "id": len(truth["annotations"]) + 1,
                    "image_id": image,
                    "category_id": category,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            moved = [x + generator.uniform(-jitter, jitter), y + generator.uniform(-jitter, jitter), w, h]
            detections.append({"image_id": image, "category_id": category, "bbox": moved, "score": generator.uniform()})
        for _ in range(false_positives):
            box = [generator.uniform(0, 250), generator.uniform(0, 180), 40.0, 40.0]
            category = int(generator.integers(0, len(NAMES)))
            detections.append({"image_id": image, "category_id": category, "bbox": box, "score": generator.uniform()})
    return truth, detections


def _only(truth, detections, kept):
    """The ground truth and detections of the images `kept` alone."""
    kept = set(kept)
    subset = dict(truth)
    subset["images"] = [image for image in truth["images"] if image["id"] in kept]
    subset["annotations"] = [box for box in truth["annotations"] if box["image_id"] in kept]
    return subset, [box for box in detections if box["image_id"] in kept]


def test_every_image_once_scores_what_pycocotools_summary_scores():
    truth, detections = _scene(0)
    expected = coco_evaluate(truth, detections, NAMES)["map50_95"]
    assert 0.1 < expected < 0.95  # a scene that neither misses everything nor matches everything
    assert resampled_map(matched_images(truth, detections), list(range(12))) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("kept", [[0, 3, 4, 9], [1, 2, 5, 6, 7, 8, 10, 11], [11]])
def test_a_subset_of_images_scores_as_those_images_scored_on_their_own(kept):
    truth, detections = _scene(1)
    coco_eval = matched_images(truth, detections)
    alone = coco_evaluate(*_only(truth, detections, kept), NAMES)["map50_95"]
    assert resampled_map(coco_eval, kept) == pytest.approx(alone, abs=1e-12)


def test_an_image_drawn_twice_weighs_twice():
    """Two images, one class each: image 0 matched perfectly, image 1 missed. Image 0 twice lifts the mAP."""
    truth, detections = _scene(2, images=2, jitter=0.0, false_positives=0)
    detections = [box for box in detections if box["image_id"] == 0]
    coco_eval = matched_images(truth, detections)
    once, twice_first, twice_second = (resampled_map(coco_eval, picks) for picks in ([0, 1], [0, 0], [1, 1]))
    assert twice_first == pytest.approx(1.0)
    assert twice_second == 0.0
    assert 0.0 < once < 1.0


def test_a_model_against_itself_differs_by_nothing_on_every_draw():
    truth, detections = _scene(3)
    spreads = difference_spreads(truth, {"same": detections}, detections, halves=20)
    assert spreads == {"same": {"difference": 0.0, "standard_error": 0.0, "low": 0.0, "high": 0.0, "halves": 20}}


def test_the_standard_error_shrinks_with_more_images():
    """Worse boxes (a larger jitter) score lower on the full set, and eight times the images give a smaller
    standard error (about sqrt(8) = 2.8 times, for a statistic that averages over images)."""
    spreads = {}
    for images in (12, 96):
        truth, detections = _scene(4, images=images, jitter=2.0)
        _, worse = _scene(4, images=images, jitter=12.0)
        spreads[images] = difference_spreads(truth, {"worse": worse}, detections, halves=60, seed=1)["worse"]
    for spread in spreads.values():
        assert spread["difference"] < 0 < spread["standard_error"]
        assert spread["low"] == pytest.approx(spread["difference"] - 1.645 * spread["standard_error"])
    assert spreads[96]["standard_error"] < 0.7 * spreads[12]["standard_error"]


def test_each_model_is_scored_on_the_reference_draws():
    """Two models in one call get what each gets alone with the same seed: the draws are the reference's."""
    truth, detections = _scene(6, images=30)
    _, worse = _scene(6, images=30, jitter=10.0)
    together = difference_spreads(truth, {"worse": worse, "same": detections}, detections, halves=15, seed=3)
    alone = difference_spreads(truth, {"worse": worse}, detections, halves=15, seed=3)
    assert together["worse"] == alone["worse"]
    scores = [coco_evaluate(truth, found, NAMES)["map50_95"] for found in (worse, detections)]
    full = 100.0 * (scores[0] - scores[1])
    assert together["worse"]["difference"] == pytest.approx(full, abs=1e-9)


def test_halves_need_two_images_and_two_halves():
    truth, detections = _scene(7, images=1)
    with pytest.raises(ValueError, match="cannot be halved"):
        difference_spreads(truth, {"same": detections}, detections, halves=4)
    with pytest.raises(ValueError, match="no spread"):
        difference_spreads(truth, {"same": detections}, detections, halves=1)


def test_no_detections_scores_zero():
    truth, _ = _scene(5)
    assert resampled_map(matched_images(truth, []), list(range(12))) == 0.0


def test_the_standard_error_matches_the_spread_over_independent_image_sets():
    """The oracle: 40 independent scenes from one process, each scored in full; the spread of their differences is
    the true standard error of a 41-image difference (an odd count: halves of 20, 21 left out). The halves' estimate
    from single scenes lands near it: 1.90 against 1.92 (a scale wrong by sqrt(2) would give 1.34 or 2.69)."""
    differences, estimates = [], []
    for seed in range(40):
        truth, detections = _scene(100 + seed, images=41, jitter=2.0)
        _, worse = _scene(100 + seed, images=41, jitter=9.0)
        scores = [coco_evaluate(truth, found, NAMES)["map50_95"] for found in (worse, detections)]
        differences.append(100.0 * (scores[0] - scores[1]))
        if seed < 8:
            estimates.append(
                difference_spreads(truth, {"worse": worse}, detections, halves=40)["worse"]["standard_error"]
            )
    true_error, estimated = np.std(differences, ddof=1), np.mean(estimates)
    assert 0.75 * true_error < estimated < 1.33 * true_error
