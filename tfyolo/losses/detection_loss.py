"""The training loss of any family's detector, over the heads its model has (Ultralytics' v8DetectionLoss and E2ELoss).

A one-to-many head (YOLOv8, YOLO11, YOLO26's auxiliary head) learns with YOLOv8's loss and the task-aligned
assigner's top 10 anchors per object. YOLO26's one-to-one head learns with the same loss terms, but each object
keeps one anchor (top 7 candidates narrowed to the best 1), so its predictions need no NMS. A model holding both
(YOLO26 training) weighs them by ProgLoss: the one-to-many weight falls linearly from 0.8 in the first epoch to
0.1 in the last, the one-to-one weight is the rest. YOLO26's assigners are small-target aware (STAL): a box side
under the middle stride (16 px) is widened to it when candidate anchors are chosen.

Ultralytics' one-to-one head reads detached features: its loss trains that head, never the backbone and neck.
Detaching would take an op inside the graph (tfmot wraps plain Keras layers only), so the loss returns that term
apart (`head_only`) and the trainer takes its gradient with respect to the one-to-one head's variables alone, which
is the same gradient.
"""

from tfyolo.compat import tf
from tfyolo.losses.task_aligned_assigner import TaskAlignedAssigner
from tfyolo.losses.yolo_loss import YOLOLoss
from tfyolo.models.detect_head import BOX_OUTPUT, CLASS_OUTPUT, ONE2ONE_OUTPUTS
from tfyolo.models.model_family import ALL_HEADS

# The task-aligned assignment of each head (Ultralytics' E2ELoss: tal_topk 10, and 7 narrowed by topk2 to 1).
ASSIGNMENT = {"one2many": {"top_k": 10}, "one2one": {"top_k": 7, "top_k2": 1}}
# ProgLoss: the one-to-many weight at the first and at the last epoch.
ONE2MANY_WEIGHTS = (0.8, 0.1)


class DetectionLoss:
    """The loss of a detector built from `config` (`tfyolo.models.model_config.ModelConfig`); `part_names` are
    the keys of the parts it logs.

    Args:
        config: ModelConfig. Its family and head say which heads the model's outputs hold.
        input_size: int. Square training input side in pixels.
        epochs: int. The run's epochs (ProgLoss' schedule).
        assigner_class: the assigner each head's loss is built with, called as TaskAlignedAssigner is (a task whose
            assignment reads more than the boxes passes its own).
    """

    part_names = ("box", "class", "dfl")

    def __init__(self, config, input_size, epochs, assigner_class=TaskAlignedAssigner):
        family = config.model_family
        self.heads = family.heads if config.head == ALL_HEADS else (config.head,)
        self.epochs = epochs
        # STAL is YOLO26's (tfyolo's YOLOv8 and YOLO11 training keeps the assignment it was measured with).
        min_side = config.strides[1] if "one2one" in family.heads else None
        self.losses = {
            head: YOLOLoss(
                config.num_classes,
                input_size,
                config.strides,
                reg_max=config.reg_max,
                assigner=assigner_class(config.num_classes, min_side=min_side, **ASSIGNMENT[head]),
            )
            for head in self.heads
        }
        self.one2many_weight = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="one2many_loss_weight")
        self.start_epoch(0)

    @property
    def has_head_only_term(self):
        """True when part of the loss trains the one-to-one head alone (a model holding both heads)."""
        return len(self.heads) > 1

    def one2many_weight_at(self, epoch):
        """ProgLoss' one-to-many weight in `epoch` (0-based): 0.8 at the first, 0.1 at the last, linear between."""
        if len(self.heads) == 1:
            return 1.0
        first, last = ONE2MANY_WEIGHTS
        return max(1.0 - epoch / max(self.epochs - 1, 1), 0.0) * (first - last) + last

    def start_epoch(self, epoch):
        self.one2many_weight.assign(self.one2many_weight_at(epoch))

    def outputs_of(self, head, outputs):
        """(box output, class output) of `head` among the model's outputs."""
        if head == "one2one" and self.has_head_only_term:
            return outputs[ONE2ONE_OUTPUTS[BOX_OUTPUT]], outputs[ONE2ONE_OUTPUTS[CLASS_OUTPUT]]
        return outputs[BOX_OUTPUT], outputs[CLASS_OUTPUT]

    def __call__(self, outputs, gt_boxes, gt_classes, gt_mask):
        """Returns (loss, head_only, parts): `loss` trains every variable; `head_only` (None for one head) trains
        the one-to-one head's variables only; parts {"box", "class", "dfl"} are the inference head's terms (the
        one-to-one head where there is one, as Ultralytics logs them), for the logs.

        gt_boxes: (B, M, 4) xyxy in input pixels; gt_classes: (B, M) int32; gt_mask: (B, M) float.
        """
        totals, parts = {}, {}
        for head, loss in self.losses.items():
            totals[head], parts[head] = loss(*self.outputs_of(head, outputs), gt_boxes, gt_classes, gt_mask)
        logged = parts["one2one"] if "one2one" in parts else parts[self.heads[0]]
        if not self.has_head_only_term:
            return totals[self.heads[0]], None, logged
        return self.one2many_weight * totals["one2many"], (1.0 - self.one2many_weight) * totals["one2one"], logged
