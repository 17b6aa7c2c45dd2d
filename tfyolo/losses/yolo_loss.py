from tfyolo.compat import tf
from tfyolo.losses.box_ops import boxes_to_distances, complete_iou, distances_to_boxes
from tfyolo.losses.task_aligned_assigner import TaskAlignedAssigner
from tfyolo.ops.anchors import anchor_points


class YOLOLoss:
    """YOLOv8's detection loss: CIoU box loss, distribution focal loss (DFL) and BCE class loss. With reg_max 1
    (YOLO26, no DFL) the distance term is an L1 loss on the plain distances, as fractions of the input side.

    Reads top to bottom as the paper's recipe: decode the predictions, assign targets with the task-aligned
    assigner, then weight each positive by its soft class target and normalize by the sum of class targets.

    Args:
        num_classes: int.
        input_size: int. Square model input side in pixels.
        strides: tuple of int.
        reg_max: int. DFL bins (1: plain distances).
        box_gain, class_gain, dfl_gain: float. YOLOv8's 7.5, 0.5, 1.5 (Ultralytics' `dfl` gain weighs the L1
            distance loss of reg_max 1 too).
        assigner: TaskAlignedAssigner or None (YOLOv8's: top-k 10).
    """

    def __init__(
        self,
        num_classes,
        input_size,
        strides=(8, 16, 32),
        reg_max=16,
        box_gain=7.5,
        class_gain=0.5,
        dfl_gain=1.5,
        assigner=None,
    ):
        self.num_classes = num_classes
        self.input_size = input_size
        self.strides = tuple(strides)
        self.reg_max = reg_max
        self.box_gain = box_gain
        self.class_gain = class_gain
        self.dfl_gain = dfl_gain
        self.assigner = assigner or TaskAlignedAssigner(num_classes)
        points, anchor_strides = anchor_points(input_size, strides)
        self.anchor_points = tf.constant(points)
        self.anchor_strides = tf.constant(anchor_strides)

    def __call__(
        self, box_distribution, class_logits, gt_boxes, gt_classes, gt_mask, with_assignment=False, assigner_inputs=None
    ):
        """Returns (total loss, {"box": ..., "class": ..., "dfl": ...}) for one batch ("dfl": the distance loss,
        DFL or, for reg_max 1, L1); with_assignment, also (target_boxes (B, A, 4) xyxy input pixels, assigned (B, A)
        int32 box index, foreground (B, A) bool): the positives a mask loss learns from.

        gt_boxes: (B, M, 4) xyxy in input pixels; gt_classes: (B, M) int32; gt_mask: (B, M) float.
        assigner_inputs: dict or None. Passed on to an assigner whose overlap reads more than the boxes
            (`tfyolo.losses.mask_aware_assigner.MaskAwareAssigner`: the head's mask coefficients and the masks).
        """
        box_distribution = tf.cast(box_distribution, tf.float32)
        class_logits = tf.cast(class_logits, tf.float32)
        batch = tf.shape(box_distribution)[0]

        # === Decode: expected distances (grid units) -> boxes ===
        if self.reg_max == 1:
            distances = box_distribution
        else:
            logits = tf.reshape(box_distribution, [batch, -1, 4, self.reg_max])
            bins = tf.range(self.reg_max, dtype=tf.float32)
            distances = tf.reduce_sum(tf.nn.softmax(logits, axis=-1) * bins, axis=-1)
        pred_boxes = distances_to_boxes(self.anchor_points, distances)

        # === Assign, in pixels ===
        assignment = self.assigner(
            tf.sigmoid(class_logits),
            pred_boxes * self.anchor_strides,
            self.anchor_points * self.anchor_strides,
            gt_classes,
            gt_boxes,
            gt_mask,
            # Asked for only when a task's loss needs each anchor's object: an assigner with the detection signature
            # (a test's, a user's) keeps working.
            **({"with_indices": True} if with_assignment else {}),
            **(assigner_inputs or {}),
        )
        target_boxes, target_scores, foreground = assignment[:3]
        target_scores_sum = tf.maximum(tf.reduce_sum(target_scores), 1.0)

        # === Class loss: BCE against the soft targets, over every anchor ===
        class_loss = (
            tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=target_scores, logits=class_logits))
            / target_scores_sum
        )

        # === Box losses on the foreground, weighted by the soft class target ===
        weight = tf.reduce_sum(target_scores, axis=-1) * tf.cast(foreground, tf.float32)
        target_boxes = target_boxes / self.anchor_strides
        iou = complete_iou(pred_boxes, target_boxes)
        box_loss = tf.reduce_sum((1.0 - iou) * weight) / target_scores_sum

        if self.reg_max == 1:
            # Ultralytics' L1 on DFL-free distances: both sides in pixels over the input side, unclipped.
            target_distances = boxes_to_distances(self.anchor_points, target_boxes, None)
            scale = self.anchor_strides / self.input_size
            distance_error = tf.reduce_mean(tf.abs((distances - target_distances) * scale), axis=-1)
        else:
            target_distances = boxes_to_distances(self.anchor_points, target_boxes, float(self.reg_max - 1))
            distance_error = self.distribution_focal_loss(logits, target_distances)
        dfl_loss = tf.reduce_sum(distance_error * weight) / target_scores_sum

        parts = {
            "box": box_loss * self.box_gain,
            "class": class_loss * self.class_gain,
            "dfl": dfl_loss * self.dfl_gain,
        }
        total = parts["box"] + parts["class"] + parts["dfl"]
        if with_assignment:
            return total, parts, (assignment[0], assignment[3], foreground)
        return total, parts

    @staticmethod
    def distribution_focal_loss(logits, target_distances):
        """Cross-entropy towards the two bins around each target distance, weighted by closeness (Li et al. 2020).

        A target of 3.3 puts weight 0.7 on bin 3 and 0.3 on bin 4. Returns the mean over the 4 sides, (B, A).
        """
        left = tf.floor(target_distances)
        left_weight = left + 1.0 - target_distances
        left_index = tf.cast(left, tf.int32)
        left_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=left_index, logits=logits)
        right_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=left_index + 1, logits=logits)
        return tf.reduce_mean(left_loss * left_weight + right_loss * (1.0 - left_weight), axis=-1)
