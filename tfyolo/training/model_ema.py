import math

from tfyolo.compat import tf


class ModelEMA:
    """Exponential moving average of every weight, BatchNorm statistics included (YOLOv8's ModelEMA).

    The decay ramps up as `decay * (1 - exp(-updates / tau))`, so early in training the average follows the
    model closely instead of being dominated by its random initialization.

    Args:
        model: keras.Model being trained.
        ema_model: keras.Model of the same architecture that holds the average.
        decay: float. Final decay.
        tau: float. Updates over which the decay ramps up.
    """

    def __init__(self, model, ema_model, decay=0.9999, tau=2000.0):
        self.model = model
        self.ema_model = ema_model
        self.decay = decay
        self.tau = tau
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="ema_updates")
        # Integer state (tfmot's optimizer_step counters) is not averaged.
        self.pairs = [
            (target, source) for target, source in zip(ema_model.weights, model.weights) if target.dtype.is_floating
        ]
        for target, source in zip(ema_model.weights, model.weights):
            target.assign(source)

    def update(self):
        self.updates.assign_add(1)
        decay = self.decay * (1.0 - tf.exp(-tf.cast(self.updates, tf.float32) / self.tau))
        for target, source in self.pairs:
            target.assign(decay * target + (1.0 - decay) * tf.cast(source, target.dtype))


def warmup_and_decay(iteration, epoch, warmup_iterations, epochs, lr0, lrf, schedule):
    """YOLOv8's learning rate: linear warmup from 0 over `warmup_iterations`, then per-epoch cosine or linear
    decay from lr0 to lr0 * lrf."""
    progress = epoch / max(epochs, 1)
    if schedule == "cosine":
        factor = ((1 - math.cos(progress * math.pi)) / 2) * (lrf - 1) + 1
    else:
        factor = (1 - progress) * (1.0 - lrf) + lrf
    target = lr0 * factor
    if iteration < warmup_iterations:
        return target * iteration / warmup_iterations
    return target
