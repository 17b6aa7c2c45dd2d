"""The segmentation model's training loss: detection's terms plus the mask term on the same positives."""

import numpy as np

from tfyolo.compat import tf
from tfyolo.losses.detection_loss import DetectionLoss
from tfyolo.losses.segment_loss import SegmentLoss
from tfyolo.losses.segmentation_loss import SegmentationLoss
from tfyolo.models.model_config import ModelConfig
from tfyolo.models.tasks import MASK_COEFFICIENTS, MASK_PROTOTYPES
from tfyolo.models.yolo_detector import build_yolo_detector

SIZE = 64


def batch():
    """Two images; the first holds two objects, the second one; masks are the boxes' left halves."""
    boxes = np.array([[[4, 4, 36, 44], [30, 20, 60, 60]], [[8, 8, 56, 40], [0, 0, 0, 0]]], np.float32)
    valid = np.array([[1, 1], [1, 0]], np.float32)
    masks = np.zeros((2, 2, SIZE // 4, SIZE // 4), np.float32)
    for b in range(2):
        for m in range(2):
            if valid[b, m]:
                x1, y1, x2, y2 = (boxes[b, m] / 4).astype(int)
                masks[b, m, y1:y2, x1 : (x1 + x2) // 2] = 1
    images = np.random.default_rng(0).uniform(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    return images, boxes, np.array([[0, 1], [1, 0]], np.int32), valid, masks


def test_the_mask_term_adds_to_detection_s_on_its_positives():
    config = ModelConfig(num_classes=2, family="yolov8", scale="n", input_size=SIZE, task="segment")
    model = build_yolo_detector(config)
    images, boxes, classes, valid, masks = batch()
    loss_fn = SegmentationLoss(config, SIZE, epochs=10)
    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        loss, head_only, parts = loss_fn(outputs, boxes, classes, valid, masks)
    assert head_only is None
    detection, _, detection_parts = DetectionLoss(config, SIZE, 10)(outputs, boxes, classes, valid)
    for name in ("box", "class", "dfl"):
        np.testing.assert_allclose(parts[name].numpy(), detection_parts[name].numpy(), rtol=1e-6)
    assert float(parts["mask"]) > 0
    np.testing.assert_allclose(loss.numpy(), detection.numpy() + parts["mask"].numpy(), rtol=1e-6)

    # The mask term is SegmentLoss on the assignment the detection term used.
    (head,) = loss_fn.detection.heads
    _, _, (target_boxes, assigned, foreground) = loss_fn.detection.losses[head](
        outputs["box_distribution"], outputs["class_logits"], boxes, classes, valid, with_assignment=True
    )
    assert bool(tf.reduce_any(foreground))
    expected = SegmentLoss(SIZE)(
        outputs[MASK_COEFFICIENTS], outputs[MASK_PROTOTYPES], masks, target_boxes, assigned, foreground
    )
    np.testing.assert_allclose(parts["mask"].numpy(), expected.numpy(), rtol=1e-6)

    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in gradients)
