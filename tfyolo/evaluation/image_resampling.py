"""How much of a mAP50-95 difference between two models scored on one image set is the draw of those images: the
difference rescored on random halves of the images (a delete-d jackknife with d = n/2, Shao and Wu 1989), every
half scored by pycocotools' own matching and accumulation.

COCOeval matches detections to ground truth image by image and class by class (`evaluate`), then ranks the matched
detections of each class across all images to build its precision-recall curve (`accumulate`). A subset of the
images accumulates their matches again, exactly as pycocotools scores those images on their own. Both models are
scored on the same halves, so what they share (a hard image, a rare class) moves both and cancels in their
difference; with half the images left out, the spread of the halves' differences is the standard error of the full
set's difference ((n - d) / d = 1).

Halves rather than Efron's bootstrap: a bootstrap draws images with replacement, and an image drawn twice
duplicates its detections, which lifts AP more for a model whose scores are all distinct than for one whose scores
tie (an int8 output's grid). On a synthetic scene with tied scores the bootstrap's mean difference sat 0.54 points
below the full set's (halves: 0.25), and on 20 of the 21 int8 files of `make bench-coco` the middle of its 90%
interval sat 0.2 to 0.9 points below the drop (docs/quantization.md). On 40 independent synthetic scenes of 41
images the spread of their differences, the true standard error, was 1.92 points (known to about 11% from 40
scenes); the halves estimated 1.90 on average from single scenes (`tests/test_image_resampling.py` holds that
oracle). Jackknife variances tend to run high rather than low (Efron and Stein, 1981).
"""

import contextlib
import copy
import io

import numpy as np

from tfyolo.evaluation.coco_metrics import coco_detections, coco_evaluator, coco_ground_truth

# COCO's mAP50-95 is read at the "all" area range and 100 detections per image (`COCOeval.summarize`'s stats[0]).
ALL_AREAS = [0, 1e5**2]
MAX_DETECTIONS = 100


def matched_images(ground_truth, detections):
    """pycocotools' per-image matches of `detections` (COCO results) to `ground_truth` (a COCO dict), boxes, at the
    "all" area range and 100 detections per image: a COCOeval after `evaluate`, ready for `resampled_map`."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = coco_evaluator(ground_truth, detections)
        coco_eval.params.areaRng, coco_eval.params.areaRngLbl = [ALL_AREAS], ["all"]
        coco_eval.params.maxDets = [MAX_DETECTIONS]
        coco_eval.evaluate()
    return coco_eval


def resampled_map(coco_eval, picks):
    """mAP50-95 over the images at positions `picks` of the evaluated image list (repeats allowed), from
    `matched_images`' matches; picks = every position once gives the full set's mAP50-95."""
    images, categories = len(coco_eval.params.imgIds), len(coco_eval.params.catIds)
    view = copy.copy(coco_eval)
    # evalImgs is laid out category by category, each one entry per image (one area range).
    view.evalImgs = [coco_eval.evalImgs[category * images + index] for category in range(categories) for index in picks]
    view.params = copy.copy(coco_eval.params)
    view.params.imgIds = list(range(len(picks)))
    view._paramsEval = view.params
    with contextlib.redirect_stdout(io.StringIO()):
        view.accumulate()
    precision = view.eval["precision"][:, :, :, 0, 0]
    scored = precision[precision > -1]
    return float(scored.mean()) if scored.size else 0.0


def difference_spreads(ground_truth, detections, reference_detections, halves=200, seed=0):
    """How each model's mAP50-95 minus the reference's, in points, depends on the draw of the images.

    ground_truth: a COCO dict; detections: {name: COCO results}; reference_detections: COCO results, all on
    `ground_truth`'s images. Every model is scored on the same `halves` random halves of the images as the reference.

    Returns {name: {"difference", "standard_error", "low", "high", "halves"}}: the full set's difference, its
    standard error from the halves, and the normal 90% interval around it (difference -/+ 1.645 standard errors)."""
    if halves == 1:
        raise ValueError("one half gives no spread: take 0 halves, or 2 or more.")
    reference = matched_images(ground_truth, reference_detections)
    count = len(reference.params.imgIds)
    if count < 2 and halves:
        raise ValueError(f"the images cannot be halved: {count} image(s) scored.")
    generator = np.random.default_rng(seed)
    draws = [list(range(count))]
    draws += [sorted(generator.choice(count, count // 2, replace=False).tolist()) for _ in range(halves)]
    reference_maps = np.array([resampled_map(reference, picks) for picks in draws])
    # The delete-d jackknife's variance: (n - d) / d times the spread of the subsets' values, d the images left out.
    left_out = count - count // 2
    scale = np.sqrt((count - left_out) / left_out)
    spreads = {}
    for name, found in detections.items():
        matched = matched_images(ground_truth, found)
        differences = 100.0 * (np.array([resampled_map(matched, picks) for picks in draws]) - reference_maps)
        error = float(scale * differences[1:].std(ddof=1)) if halves > 1 else 0.0
        spreads[name] = {
            "difference": float(differences[0]),
            "standard_error": error,
            "low": float(differences[0] - 1.645 * error),
            "high": float(differences[0] + 1.645 * error),
            "halves": halves,
        }
    return spreads


def evaluation_spreads(dataset, evaluations, reference, halves=200, seed=0):
    """`difference_spreads` of Evaluations (`tfyolo.evaluation.evaluator`) from one pass over `dataset`: {name:
    Evaluation} against the reference's Evaluation, boxes."""

    def results(evaluation):
        return [row for index, found in sorted(evaluation.detections.items()) for row in coco_detections(index, *found)]

    truth = coco_ground_truth(dataset, reference.image_sizes)
    found = {name: results(evaluation) for name, evaluation in evaluations.items()}
    return difference_spreads(truth, found, results(reference), halves, seed)
