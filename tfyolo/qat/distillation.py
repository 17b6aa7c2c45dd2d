"""Quantization-aware training by distillation: the float model's own outputs are the targets, so it needs no
labels and learns from the calibration images (never the evaluated ones).

The QAT model starts from the seeded ranges (`seed_quantization_ranges`: the rule of tfyolo's PTQ) and runs in
inference mode throughout: its fake-quant ranges and any BatchNorm statistics stay as calibrated and only the
weights move, towards whatever undoes the error int8 adds. Each epoch is judged on calibration images held out of
training, by the same loss, and the best weights, the start included, are the ones kept: the result can only match
the start or come closer to the float model on those images. A fine-tune on labels (what the search ran before)
took the COCO YOLOv8n from 0.42 to 0.03 mAP50-95 in three epochs on about 100 images.

What it buys, measured on the COCO YOLO11n (100 coco128 images at seed 0, 20 of them held out; 32-42 s per epoch
on 2 cores at 640 px; `python -m benchmarks.study_distillation`, benchmarks/results/coco_distillation.md): the
held-out loss of the seeded start is 0.0338, and Adam at 1e-5 gave 0.0362 / 0.0367 / 0.0356 over 3 epochs, so the
start is kept. The loss moves with the draw of flips: a run that drew them differently reached 0.0331 at epoch 3,
and that model's int8 scored -0.57 pt on coco_val150 against the start's -0.35 (noise on 150 images). Other settings
made it worse (Adam at 3e-6: 0.036-0.039, at 1e-4: 0.16-0.28; SGD with momentum 0.9 at 1e-4: 0.035-0.050, at 1e-3:
5.1). A hundred images do not hold enough to move a network whose int8 error is rounding noise, so on such a set
the start is what is kept.
"""

import dataclasses
import math
import time
from pathlib import Path

import numpy as np

from tfyolo.compat import keras, tf
from tfyolo.errors import ConfigError
from tfyolo.models.detect_head import BOX_OUTPUT, CLASS_OUTPUT

# Distillation learns from the calibration images; a part is held out to judge each epoch.
HOLDOUT_FRACTION = 0.2
# Images `tfyolo qat --distill` learns from by default: as many as the built-in int8 calibrates with.
DISTILLATION_IMAGES = 100


@dataclasses.dataclass(frozen=True)
class DistillationConfig:
    """epochs: passes over the training images; learning_rate and optimizer ("adam", or "sgd" with momentum 0.9):
    the module docstring's measurements; batch: images per step; holdout: the fraction of the images kept out of
    training to judge each epoch; seed: the split, the order and the flips."""

    epochs: int = 3
    learning_rate: float = 1e-5
    optimizer: str = "adam"
    batch: int = 4
    holdout: float = HOLDOUT_FRACTION
    seed: int = 0

    def __post_init__(self):
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"distillation optimizer: expected 'adam' or 'sgd', received {self.optimizer!r}.")


def distillation_loss(student, teacher):
    """The distance of the QAT model's outputs (`student`) from the float model's (`teacher`), dicts of
    (batch, anchors, channels) tensors. Returns (total, class term, box term, other term).

    Class logits: binary cross-entropy against the float model's probabilities, summed over the classes and averaged
    over the anchors. Boxes matter only where the float model sees something, so the box term is weighted per anchor
    by its best class probability: the KL divergence of each side's DFL distribution (reg_max > 1), or the L1
    distance of each side's distance (YOLO26's reg_max 1). Any other output (a segmenter's mask coefficients and
    prototypes): the mean squared difference."""
    teacher_scores = tf.sigmoid(teacher[CLASS_OUTPUT])
    class_term = tf.reduce_mean(
        tf.reduce_sum(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=teacher_scores, logits=student[CLASS_OUTPUT]), axis=-1
        )
    )
    weight = tf.reduce_max(teacher_scores, axis=-1)
    box_t, box_s = teacher[BOX_OUTPUT], student[BOX_OUTPUT]
    sides = 4
    bins = box_t.shape[-1] // sides
    if bins > 1:
        shape = tf.concat([tf.shape(box_t)[:-1], [sides, bins]], axis=0)
        log_t = tf.nn.log_softmax(tf.reshape(box_t, shape), axis=-1)
        log_s = tf.nn.log_softmax(tf.reshape(box_s, shape), axis=-1)
        per_anchor = tf.reduce_sum(tf.exp(log_t) * (log_t - log_s), axis=[-2, -1])
    else:
        per_anchor = tf.reduce_sum(tf.abs(box_t - box_s), axis=-1)
    box_term = tf.reduce_sum(weight * per_anchor) / tf.maximum(tf.reduce_sum(weight), 1e-6)
    others = [
        tf.reduce_mean(tf.square(teacher[name] - student[name]))
        for name in teacher
        if name not in (BOX_OUTPUT, CLASS_OUTPUT)
    ]
    other_term = tf.add_n(others) if others else tf.constant(0.0)
    return class_term + box_term + other_term, class_term, box_term, other_term


def _batches(count, batch, rng=None):
    order = rng.permutation(count) if rng is not None else np.arange(count)
    return [order[start : start + batch] for start in range(0, count, batch)]


class Distillation:
    """Trains `qat_model` towards `float_model` on `images` (model inputs, N x H x W x 3) by `config`."""

    def __init__(self, qat_model, float_model, images, config=DistillationConfig()):
        if len(images) < 2:
            raise ValueError(
                f"distillation needs at least 2 images (some to learn from, some to judge by); received {len(images)}."
            )
        self.qat_model, self.float_model, self.config = qat_model, float_model, config
        self.rng = np.random.default_rng(config.seed)
        order = self.rng.permutation(len(images))
        held = min(max(1, round(len(images) * config.holdout)), len(images) - 1)
        self.held_out, self.train = images[order[:held]], images[order[held:]]

    @staticmethod
    def _outputs(model, images):
        outputs = model(images, training=False)
        return dict(outputs) if isinstance(outputs, dict) else dict(zip(model.output_names, outputs))

    def held_out_loss(self):
        """The mean loss over the held-out images (each batch weighted by its size)."""
        total = 0.0
        for index in _batches(len(self.held_out), self.config.batch):
            images = tf.constant(self.held_out[index])
            loss = distillation_loss(self._outputs(self.qat_model, images), self._outputs(self.float_model, images))[0]
            total += float(loss) * len(index)
        return total / len(self.held_out)

    def run(self, progress=None):
        """Trains for `config.epochs`, keeps the best weights by the held-out loss, and returns the history: one
        dict per epoch (epoch 0: the start) with its held-out loss and whether it was the best so far. `progress`,
        if given, is called with each epoch's dict as it ends."""
        if self.config.optimizer == "sgd":
            optimizer = keras.optimizers.SGD(self.config.learning_rate, momentum=0.9)
        else:
            optimizer = keras.optimizers.Adam(self.config.learning_rate)
        variables = self.qat_model.trainable_variables
        flips = tf.random.Generator.from_seed(self.config.seed)

        @tf.function
        def step(images):
            # A horizontal flip on half the images: the float model sees the same flipped image, so it stays a target.
            flipped = flips.uniform([tf.shape(images)[0], 1, 1, 1]) < 0.5
            images = tf.where(flipped, tf.image.flip_left_right(images), images)
            teacher = self._outputs(self.float_model, images)
            with tf.GradientTape() as tape:
                loss = distillation_loss(self._outputs(self.qat_model, images), teacher)[0]
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        best_loss, best_weights = self.held_out_loss(), self.qat_model.get_weights()
        history = [{"epoch": 0, "held_out_loss": best_loss, "best": True}]
        if progress:
            progress(history[-1])
        for epoch in range(1, self.config.epochs + 1):
            started = time.perf_counter()
            losses = [
                float(step(tf.constant(self.train[index])))
                for index in _batches(len(self.train), self.config.batch, self.rng)
            ]
            loss = self.held_out_loss()
            improved = math.isfinite(loss) and loss < best_loss
            if improved:
                best_loss, best_weights = loss, self.qat_model.get_weights()
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": float(np.mean(losses)),
                    "held_out_loss": loss,
                    "best": improved,
                    "seconds": time.perf_counter() - started,
                }
            )
            if progress:
                progress(history[-1])
        self.qat_model.set_weights(best_weights)
        return history


def kept_epoch(history):
    """The epoch of a `Distillation.run` history whose weights the run kept: the last one marked best (epoch 0, the
    seeded start, when no epoch beat it)."""
    return [epoch for epoch in history if epoch["best"]][-1]


def distill_qat_model(model_path, images, out, config=DistillationConfig(), progress=None):
    """The QAT model of the float detector at `model_path`: wrapped, its ranges seeded from `images` (the rule of
    tfyolo's PTQ), distilled on them by `config`, saved atomically to `out` (.h5) with the float model's metadata,
    the QAT facts and the distillation's config and history. Returns the history."""
    from tfyolo.metadata import find_model_metadata
    from tfyolo.models.detector_metadata import family_of
    from tfyolo.models.model_io import load_keras_model, save_model_atomic
    from tfyolo.qat.qat_model import build_qat_model, seed_quantization_ranges

    float_model = load_keras_model(model_path)
    metadata = find_model_metadata(model_path) or {}
    qat_model = build_qat_model(float_model, family=family_of(metadata))
    seed_quantization_ranges(qat_model, float_model, images)
    history = Distillation(qat_model, float_model, images, config).run(progress)
    facts = {
        "qat": True,
        "qat_staged": False,
        "qat_from": str(Path(model_path).resolve()),
        "qat_preserve": None,
        "qat_distillation": {"config": dataclasses.asdict(config), "images": len(images), "history": history},
    }
    save_model_atomic(qat_model, out, {**metadata, **facts})
    return history


def distill_on_data(
    model_path, data_yaml, out_dir, config=DistillationConfig(), images=DISTILLATION_IMAGES, force=False, progress=None
):
    """The distillation job of `tfyolo qat --distill` and of the benchmarks: the QAT model of the float detector at
    `model_path`, distilled on `images` train images of `data_yaml` drawn with `config.seed` (as int8 draws its
    calibration images), saved to `out_dir`/best.h5 with its history in `out_dir`/history.json. The train images are
    refused where one has the content of a val image, unless `force`, as for any fine-tune: a model that learned from
    its test images reports a flattering mAP. The labels are never read for learning, only checked as the dataset
    loader checks them. Returns (history, the calibration summary)."""
    from tfyolo.data.calibration_images import (
        evaluation_image_paths,
        load_calibration_images,
        refuse_training_overlap,
    )
    from tfyolo.io_utils import atomic_write_json
    from tfyolo.metadata import find_model_metadata
    from tfyolo.models.model_io import load_keras_model

    refuse_training_overlap(data_yaml, evaluation_image_paths(data_yaml), force, "QAT by distillation")
    size = (find_model_metadata(model_path) or {}).get("imgsz") or int(load_keras_model(model_path).input_shape[1])
    drawn, summary = load_calibration_images(str(data_yaml), int(size), images, config.seed, force=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    history = distill_qat_model(model_path, drawn, out_dir / "best.h5", config, progress)
    atomic_write_json(out_dir / "history.json", history)
    return history, summary
