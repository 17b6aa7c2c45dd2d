"""YOLO26-seg's training loss: the mask-aware assignment, the semantic term, and both heads with their own
coefficients, each against arithmetic written from Ultralytics' definitions (SegTaskAlignedAssigner, BCEDiceLoss,
E2ELoss over SegmentLoss26)."""

import numpy as np
import pytest

from tfyolo.compat import keras, tf
from tfyolo.losses.box_ops import complete_iou
from tfyolo.losses.detection_loss import DetectionLoss
from tfyolo.losses.mask_aware_assigner import MaskAwareAssigner
from tfyolo.losses.segment_loss import SegmentLoss
from tfyolo.losses.segmentation_loss import SegmentationLoss
from tfyolo.losses.semantic_loss import SemanticLoss
from tfyolo.losses.task_aligned_assigner import TaskAlignedAssigner
from tfyolo.models.detect_head import branch_layers
from tfyolo.models.model_config import ModelConfig
from tfyolo.models.yolo_detector import build_yolo_detector

INPUT = 16  # input pixels; prototypes 4 x 4, one prototype pixel = 4 input pixels


def two_anchor_case():
    """One object (box [0, 0, 16, 16], mask: the left half) and two anchors predicting boxes inside it. Anchor 0's
    box fits better ([0, 0, 16, 15]) but its mask is the right half; anchor 1's box is worse ([0, 0, 16, 13]) and
    its mask is the object's. Prototype 0 is +1 on the left half and -1 on the right; the coefficients are +-1."""
    gt_boxes = tf.constant([[[0.0, 0.0, 16.0, 16.0]]])
    pred_boxes = tf.constant([[[0.0, 0.0, 16.0, 15.0], [0.0, 0.0, 16.0, 13.0]]])
    points = tf.constant([[6.0, 6.0], [10.0, 6.0]])
    prototypes = np.zeros((1, 4, 4, 1), np.float32)
    prototypes[0, :, :2, 0], prototypes[0, :, 2:, 0] = 1.0, -1.0
    coefficients = tf.constant([[[-1.0], [1.0]]])
    gt_masks = np.zeros((1, 1, 4, 4), np.float32)
    gt_masks[0, 0, :, :2] = 1.0
    scores = tf.fill((1, 2, 1), 0.5)
    return scores, pred_boxes, points, gt_boxes, coefficients, tf.constant(prototypes), tf.constant(gt_masks)


def test_the_mask_aware_overlap_is_the_mean_of_box_and_mask_iou():
    """Hand arithmetic: anchor 0's predicted mask is the right half cropped to rows 0-3 (15 / 4 = 3.75 rows, so rows
    0..3 all count): IoU with the left half 0; anchor 1's is the left half over rows 0..3 (13 / 4 = 3.25): 8 of 8
    pixels, IoU 1. Each overlap is (CIoU + mask IoU) / 2."""
    scores, pred_boxes, _, gt_boxes, coefficients, prototypes, gt_masks = two_anchor_case()
    assigner = MaskAwareAssigner(1, INPUT, top_k=1)
    candidate = tf.ones((1, 1, 2))
    class_scores = tf.fill((1, 1, 2), 0.5)
    overlaps = assigner.pair_overlaps(gt_boxes, pred_boxes, candidate, class_scores, coefficients, prototypes, gt_masks)
    box_iou = complete_iou(gt_boxes[:, :, None], pred_boxes[:, None]).numpy()[0, 0]
    np.testing.assert_allclose(overlaps.numpy()[0, 0], [(box_iou[0] + 0.0) / 2, (box_iou[1] + 1.0) / 2], rtol=1e-6)
    assert box_iou[0] > box_iou[1]


def test_the_mask_aware_assigner_picks_the_anchor_whose_mask_is_right():
    """With one positive per object, the box-only assigner takes anchor 0 (better box); the mask-aware one anchor 1
    (the right mask): (0.5 x box + 0.5) beats 0.5 x box for any box IoUs this close."""
    scores, pred_boxes, points, gt_boxes, coefficients, prototypes, gt_masks = two_anchor_case()
    common = (scores, pred_boxes, points, tf.zeros((1, 1), tf.int32), gt_boxes, tf.ones((1, 1)))
    _, _, box_only = TaskAlignedAssigner(1, top_k=1)(*common)
    _, _, mask_aware = MaskAwareAssigner(1, INPUT, top_k=1)(
        *common, coefficients=coefficients, prototypes=prototypes, gt_masks=gt_masks
    )
    assert box_only.numpy().tolist() == [[True, False]]
    assert mask_aware.numpy().tolist() == [[False, True]]


def test_only_each_box_s_best_three_top_k_pairs_get_a_mask_iou():
    """top_k 1, so 3 pairs per box get a mask IoU: with 5 candidate anchors whose predicted masks all equal the
    object's (mask IoU 1), the 3 with the best box metric get (CIoU + 1) / 2 and the other two CIoU / 2."""
    gt_boxes = tf.constant([[[0.0, 0.0, 16.0, 16.0]]])
    heights = np.array([16.0, 15.0, 14.0, 13.0, 12.0], np.float32)
    pred_boxes = tf.constant(np.stack([np.zeros(5), np.zeros(5), np.full(5, 16.0), heights], -1)[None], tf.float32)
    prototypes = tf.ones((1, 4, 4, 1))
    gt_masks = tf.ones((1, 1, 4, 4))
    coefficients = tf.ones((1, 5, 1))
    # Every predicted mask is its box's rows: 4, 4, 4, 4 and 3 of the 4 rows; IoU 1, 1, 1, 1, 0.75.
    overlaps = MaskAwareAssigner(1, INPUT, top_k=1).pair_overlaps(
        gt_boxes, pred_boxes, tf.ones((1, 1, 5)), tf.fill((1, 1, 5), 0.5), coefficients, prototypes, gt_masks
    )
    box_iou = complete_iou(gt_boxes[:, :, None], pred_boxes[:, None]).numpy()[0, 0]
    expected = np.concatenate([(box_iou[:3] + 1.0) / 2, box_iou[3:] / 2])
    np.testing.assert_allclose(overlaps.numpy()[0, 0], expected, rtol=1e-6)


def test_semantic_targets_give_each_pixel_the_class_of_its_smallest_mask():
    """Two overlapping objects on a 4 x 4 mask grid taken to 2 x 2 (every second pixel): the large one (class 0)
    covers everything, the small one (class 2) the top-left pixel; a padding row covering the rest is ignored."""
    masks = np.zeros((1, 3, 4, 4), np.float32)
    masks[0, 0] = 1.0
    masks[0, 1, 0:2, 0:2] = 1.0
    masks[0, 2, 2:, 2:] = 1.0  # padding (gt_mask 0)
    target = (
        SemanticLoss(3)
        .targets(tf.constant(masks), tf.constant([[0, 2, 1]]), tf.constant([[1.0, 1.0, 0.0]]), 2, 2)
        .numpy()[0]
    )
    assert target.argmax(-1).tolist() == [[2, 0], [0, 0]]
    assert target.sum(-1).tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_the_smallest_mask_is_found_at_the_masks_own_resolution():
    """Mask A: rows 1 and 3 and pixel (0, 0), 9 pixels, of which the 2 x 2 sampling (every second pixel) sees only
    (0, 0); mask B: pixels (0, 0), (0, 2), (2, 0), 3 pixels, all sampled. At (0, 0) both cover: B is the smaller
    (3 < 9), so its class wins there, although A looks smaller among the sampled pixels (1 < 3)."""
    masks = np.zeros((1, 2, 4, 4), np.float32)
    masks[0, 0, [1, 3], :] = 1.0
    masks[0, 0, 0, 0] = 1.0
    masks[0, 1, 0, 0] = masks[0, 1, 0, 2] = masks[0, 1, 2, 0] = 1.0
    target = SemanticLoss(2).targets(tf.constant(masks), tf.constant([[0, 1]]), tf.ones((1, 2)), 2, 2).numpy()[0]
    assert target[0, 0].tolist() == [0.0, 1.0]


def test_a_batch_without_objects_has_no_semantic_loss():
    """Ultralytics computes the term only where the head has positives: with no object it is 0, not a push of
    every pixel towards background."""
    loss = SemanticLoss(2)(
        tf.fill((1, 2, 2, 2), 3.0), tf.zeros((1, 1, 4, 4)), tf.zeros((1, 1), tf.int32), tf.zeros((1, 1))
    )
    assert float(loss) == 0.0


def test_semantic_loss_at_zero_logits_is_bce_ln2_plus_dice_arithmetic():
    """Logits 0: every sigmoid is 1/2, so the BCE is ln 2 and each (image, class) Dice loss is
    1 - (2 x T/2 + 1) / (HW/2 + T + 1), T the class's target pixels. One object (class 1) covering 3 of 4 pixels,
    2 classes: T = 0 and 3, HW = 4; the result is gained by 7.5."""
    masks = np.zeros((1, 1, 2, 2), np.float32)
    masks[0, 0].flat[:3] = 1.0
    loss = SemanticLoss(2)(tf.zeros((1, 2, 2, 2)), tf.constant(masks), tf.constant([[1]]), tf.constant([[1.0]]))
    dice = [1 - (2 * t / 2 + 1) / (4 / 2 + t + 1) for t in (0, 3)]
    assert float(loss) == pytest.approx(7.5 * (0.5 * np.log(2) + 0.5 * np.mean(dice)), rel=1e-6)


SIZE = 64


@pytest.fixture(scope="module")
def yolo26_batch():
    config = ModelConfig(num_classes=2, family="yolo26", scale="n", input_size=SIZE, task="segment", head="both")
    # Seeded: at initialization both heads' coefficients are near zero, so their mask terms differ by about 1e-5
    # relative, whatever tests ran before in this process.
    keras.utils.set_random_seed(0)
    model = build_yolo_detector(config)
    boxes = np.array([[[4, 4, 36, 44], [30, 20, 60, 60]], [[8, 8, 56, 40], [0, 0, 0, 0]]], np.float32)
    valid = np.array([[1, 1], [1, 0]], np.float32)
    masks = np.zeros((2, 2, SIZE // 4, SIZE // 4), np.float32)
    for b, m in zip(*np.nonzero(valid)):
        x1, y1, x2, y2 = (boxes[b, m] / 4).astype(int)
        masks[b, m, y1:y2, x1 : (x1 + x2) // 2] = 1
    images = np.random.default_rng(0).uniform(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    return config, model, images, (boxes, np.array([[0, 1], [1, 0]], np.int32), valid, masks)


def test_both_yolo26_heads_learn_masks_with_their_own_coefficients(yolo26_batch):
    """The total is ProgLoss' one-to-many weight x (its detection, mask and semantic terms); the head-only term is
    the rest x the one-to-one head's detection and mask terms, the mask term computed from `one2one_mask_coefficients`
    on that head's own positives. Each is recomputed here from its parts."""
    config, model, images, (boxes, classes, valid, masks) = yolo26_batch
    loss_fn = SegmentationLoss(config, SIZE, epochs=10)
    assert loss_fn.part_names == ("box", "class", "dfl", "mask", "semantic")
    outputs = model(images, training=True)
    loss, head_only, parts = loss_fn(outputs, boxes, classes, valid, masks)
    detection = DetectionLoss(config, SIZE, 10, assigner_class=lambda n, **kw: MaskAwareAssigner(n, SIZE, **kw))
    expected = {}
    for head, coefficient_name in (("one2many", "mask_coefficients"), ("one2one", "one2one_mask_coefficients")):
        box, cls = detection.outputs_of(head, outputs)
        total, _, (target_boxes, assigned, foreground) = detection.losses[head](
            box,
            cls,
            boxes,
            classes,
            valid,
            with_assignment=True,
            assigner_inputs={
                "coefficients": outputs[coefficient_name],
                "prototypes": outputs["mask_prototypes"],
                "gt_masks": masks,
            },
        )
        assert bool(tf.reduce_any(foreground))
        mask = SegmentLoss(SIZE)(
            outputs[coefficient_name], outputs["mask_prototypes"], masks, target_boxes, assigned, foreground
        )
        expected[head] = (float(total), float(mask))
    semantic = float(SemanticLoss(2)(outputs["semantic_logits"], masks, classes, valid))
    assert 0.0 < semantic and parts["semantic"].numpy() == pytest.approx(semantic, rel=1e-6)
    assert parts["mask"].numpy() == pytest.approx(expected["one2one"][1], rel=1e-6)
    assert expected["one2one"][1] != pytest.approx(expected["one2many"][1], rel=1e-6)
    assert float(loss) == pytest.approx(0.8 * (sum(expected["one2many"]) + semantic), rel=1e-5)
    assert float(head_only) == pytest.approx(0.2 * sum(expected["one2one"]), rel=1e-5)


def test_the_one_to_one_term_reaches_only_its_head_and_the_rest_everything_else(yolo26_batch):
    """The trainer takes the head-only term's gradient w.r.t. the one-to-one head's layers alone; here: that term has
    a gradient on each of those layers' kernels, and the main term none on them (Ultralytics detaches their input)
    but one on the semantic branch and the prototypes."""
    config, model, images, (boxes, classes, valid, masks) = yolo26_batch
    loss_fn = SegmentationLoss(config, SIZE, epochs=10)
    with tf.GradientTape(persistent=True) as tape:
        loss, head_only, _ = loss_fn(model(images, training=True), boxes, classes, valid, masks)
    one2one = [layer for layer in branch_layers(model, "one2one") if layer.trainable_weights]
    assert any("_o2o_mask" in layer.name for layer in one2one)
    kernels = [layer.trainable_weights[0] for layer in one2one]
    # One backward pass per term, over every kernel at once.
    assert all(gradient is not None for gradient in tape.gradient(head_only, kernels))
    assert all(gradient is None for gradient in tape.gradient(loss, kernels))
    shared = [model.get_layer(name).trainable_weights[0] for name in ("head_semseg_pred", "head_proto_cv3_conv")]
    for gradient in tape.gradient(loss, shared):
        assert gradient is not None and np.all(np.isfinite(gradient.numpy()))
