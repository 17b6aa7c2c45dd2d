"""YOLO26-seg's training-only semantic term (Ultralytics' SegmentLoss26 `sem_loss`, BCEDiceLoss).

Proto26's `semseg` branch predicts per-class logits at stride 8 from the fused features; it is dropped for
inference, and only shapes the features the prototypes are made from. Its target is each pixel's class: the class
of the smallest ground-truth mask covering it (Ultralytics' overlapping-mask rule), no class where none does. The
loss is half the binary cross-entropy over every pixel and class plus half the Dice loss per image and class
(smoothing 1), weighed by the box gain as the mask term is.
"""

from tfyolo.compat import tf


class SemanticLoss:
    """Semantic segmentation loss of one batch.

    Args:
        num_classes: int.
        gain: float. Ultralytics' box gain, 7.5, which weighs its semantic term.
        smooth: float. Dice smoothing (Ultralytics' 1).
    """

    def __init__(self, num_classes, gain=7.5, smooth=1.0):
        self.num_classes = num_classes
        self.gain = gain
        self.smooth = smooth

    def targets(self, gt_masks, gt_classes, gt_mask, height, width):
        """(B, height, width, C) one-hot class of each pixel's smallest covering mask, zero where none covers it.
        gt_masks: (B, M, h, w) 0/1 at prototype resolution, a whole multiple of (height, width): taken by nearest
        neighbour (every (h / height)-th pixel from the first), as Ultralytics' F.interpolate(mode="nearest")."""
        step = tf.shape(gt_masks)[2] // height
        full = tf.cast(gt_masks > 0.5, tf.float32) * gt_mask[:, :, None, None]
        # Areas at the masks' own resolution (Ultralytics ranks the instances there), pixels taken after.
        area = tf.reduce_sum(full, axis=[2, 3], keepdims=True)
        masks = full[:, :, ::step, ::step]
        # Smallest covering mask wins: uncovered (mask, pixel) pairs get an area no mask has.
        key = tf.where(masks > 0, area, tf.reduce_max(area) + 1.0)
        winner = tf.argmin(key, axis=1, output_type=tf.int32)  # (B, height, width)
        covered = tf.reduce_max(masks, axis=1)
        classes = tf.gather(gt_classes, tf.reshape(winner, [tf.shape(winner)[0], -1]), batch_dims=1)
        one_hot = tf.one_hot(tf.reshape(classes, tf.shape(winner)), self.num_classes)
        return one_hot * covered[..., None]

    def __call__(self, semantic_logits, gt_masks, gt_classes, gt_mask):
        """Returns the gained semantic loss, a scalar; 0 for a batch without objects (Ultralytics computes the term
        only where its head has positives).

        semantic_logits: (B, height, width, C). gt_masks: (B, M, h, w) 0/1 at prototype resolution.
        gt_classes: (B, M) int32. gt_mask: (B, M) float, 1.0 for real objects."""
        logits = tf.cast(semantic_logits, tf.float32)
        height, width = tf.shape(logits)[1], tf.shape(logits)[2]
        target = self.targets(gt_masks, gt_classes, gt_mask, height, width)
        bce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits))
        probabilities = tf.sigmoid(logits)
        intersection = tf.reduce_sum(probabilities * target, axis=[1, 2])
        union = tf.reduce_sum(probabilities, axis=[1, 2]) + tf.reduce_sum(target, axis=[1, 2])
        dice = 1.0 - (2.0 * intersection + self.smooth) / (union + self.smooth)
        any_object = tf.cast(tf.reduce_any(gt_mask > 0), tf.float32)
        return any_object * self.gain * (0.5 * bce + 0.5 * tf.reduce_mean(dice))
