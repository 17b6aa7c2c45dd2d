"""Float training of the detector with a custom tf.function step (faster than `fit` on CPU, measured)."""

import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np

import tfyolo
from tfyolo.compat import keras, tf
from tfyolo.data.augment import AugmentConfig
from tfyolo.data.detection_dataset import DetectionDataset, label_path_for
from tfyolo.data.pipeline import training_dataset
from tfyolo.errors import ConfigError, TfyoloError
from tfyolo.evaluation.evaluator import evaluate
from tfyolo.evaluation.model_evaluation import TASK_REPORT_KEYS
from tfyolo.evaluation.runners import KerasRunner
from tfyolo.io_utils import atomic_write_json
from tfyolo.losses.task_losses import task_loss
from tfyolo.metadata import read_model_file_metadata
from tfyolo.models.detect_head import branch_layers
from tfyolo.models.detector_metadata import config_from_metadata, detector_metadata
from tfyolo.models.families import FAMILIES
from tfyolo.models.model_config import ModelConfig
from tfyolo.models.model_family import ALL_HEADS
from tfyolo.models.model_io import save_model_atomic
from tfyolo.models.transfer import transfer_weights
from tfyolo.models.yolo_detector import build_yolo_detector
from tfyolo.training import compression
from tfyolo.training.model_ema import ModelEMA, warmup_and_decay
from tfyolo.training.train_config import TrainConfig

TRAIN_ARGS_NAME = "train_args.json"
# A row of history.json: one per epoch, and epoch 0 for a run that validates its start (its training keys None).
HISTORY_KEYS = (
    "epoch",
    "loss",
    "box_loss",
    "class_loss",
    "dfl_loss",
    "map50_95",
    "map50",
    "precision",
    "recall",
    "learning_rate",
    "train_seconds",
    "images_per_second",
    "mosaic",
)
VALIDATION_KEYS = ("map50_95", "map50", "precision", "recall")
# A task's own validation figure beside the boxes' (a segmenter's "mask_map50_95").
TASK_FIGURES = tuple(f"{key}_map50_95" for key in TASK_REPORT_KEYS)


def validation_figures(metrics):
    """The flat figures of a validation (`Evaluation.all_metrics`): the box ones and each task's mAP50-95."""
    figures = {key: metrics[key] for key in ("map50_95", "map50", "map75", "precision", "recall")}
    figures.update({f"{key}_map50_95": metrics[key]["map50_95"] for key in TASK_REPORT_KEYS if key in metrics})
    return figures


def task_figures_text(figures):
    """ " mask mAP50-95 0.314" for each task figure `figures` holds (nothing for a detector's), for progress lines."""
    return "".join(
        f" {key.removesuffix('_map50_95')} mAP50-95 {figures[key]:.3f}"
        for key in TASK_FIGURES
        if figures.get(key) is not None
    )


def fitness(figures):
    """What a run keeps its best epoch by: the box mAP50-95 plus each task's own (a segmenter's masks), as
    Ultralytics' fitness adds the box and mask ones: a fine-tune that keeps its boxes and loses its masks has not
    improved."""
    return figures["map50_95"] + sum(figures.get(key) or 0.0 for key in TASK_FIGURES)


class SilentReporter:
    """Receives training events; the CLI passes one that draws progress bars."""

    def message(self, text):
        pass

    def epoch_start(self, epoch, epochs, num_batches):
        pass

    def batch_end(self, losses):
        pass

    def epoch_end(self, summary):
        pass


def dataset_fingerprint(*datasets):
    """sha256 over image names and label contents: changes when the data a model was trained on changes."""
    digest = hashlib.sha256()
    for dataset in datasets:
        for sample in dataset.samples:
            digest.update(sample.image_path.name.encode())
            label = label_path_for(sample.image_path)
            digest.update(label.read_bytes() if label.is_file() else b"")
    return digest.hexdigest()


def cpu_flags():
    """The CPU feature flags (Linux /proc/cpuinfo), or an empty set where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# CPU flags that give native arithmetic for each mixed-precision policy.
NATIVE_CPU_FLAGS = {"mixed_bfloat16": {"avx512_bf16", "amx_bf16"}, "mixed_float16": {"avx512_fp16", "amx_fp16"}}


def precision_warning(policy, has_gpu, flags=None):
    """A warning when a mixed-precision policy will be slower than float32 here, else None.

    Measured on 2-core EPYC CPUs (n model, 320 px): mixed_float16 0.22-0.34x float32 everywhere;
    mixed_bfloat16 1.35x with avx512_bf16, 0.11x without.
    """
    if not policy or has_gpu:
        return None
    flags = cpu_flags() if flags is None else flags
    if flags & NATIVE_CPU_FLAGS[policy]:
        return None
    return (
        f"--mixed-precision {policy} on a CPU without native support ({'/'.join(sorted(NATIVE_CPU_FLAGS[policy]))})"
        ": it emulates the narrow type and was measured 3-9x slower than float32. It is meant for GPUs."
    )


def select_strategy(name):
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        # Reads the cluster from TF_CONFIG, as every tf.distribute multi-worker job.
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


class Trainer:
    """Trains a detector per `TrainConfig`, writing checkpoints, last/best.keras (their metadata inside) and
    history.json into `config.out`.

    A killed run restarts from its last completed epoch with `Trainer(TrainConfig.from_dict(saved)).fit()`;
    every epoch's data order and augmentation come from (seed, epoch), so the resumed run sees the same data.

    models: what the run trains, when it is not a fresh float detector: an object with `model_config` (the
        ModelConfig), `suffix` (".h5" for QAT), `details` (a dict recorded in the saved metadata) and
        `build(reporter) -> (model, ema_model)`. Quantization-aware training passes one
        (`tfyolo.qat.qat_training.QATModels`): this module knows nothing of tfmot's wrappers.
    """

    def __init__(self, config: TrainConfig, reporter=None, models=None):
        self.config = config
        self.reporter = reporter or SilentReporter()
        self.out = Path(config.out)
        self.train_data = self._checked(DetectionDataset.from_data_yaml(config.data, "train"))
        self.val_data = self._checked(DetectionDataset.from_data_yaml(config.data, "val"))
        if config.qat_from and models is None:
            raise ConfigError("a QAT run (qat_from) trains through tfyolo.qat.qat_training.trainer_for.")
        self.models = models
        self.source_model = None
        if models is not None:
            self.model_config = models.model_config
        else:
            family = FAMILIES[config.family]
            self.model_config = ModelConfig(
                num_classes=self.train_data.num_classes,
                family=config.family,
                scale=config.scale,
                activation=config.activation,
                input_size=config.imgsz,
                # A family with two heads (YOLO26) trains both; each is saved alone beside the model.
                head=ALL_HEADS if len(family.heads) > 1 else None,
                task=config.task,
            )
        if config.init_weights and models is None:
            self.source_model, self.model_config = self._load_source(self.model_config)
        self.max_boxes = config.max_boxes or max(1, self.train_data.max_boxes_per_image * (4 if config.mosaic else 1))
        # A task learning from masks (segmentation) draws them from the labels' outlines.
        self.mask_ratio = self.model_config.model_task.mask_ratio or None
        if self.mask_ratio and not self.train_data.has_polygons:
            raise ConfigError(
                f"{self.train_data.description}: a {self.model_config.task} model learns from polygon labels "
                "(class x1 y1 x2 y2 x3 y3 ...), and this split has none."
            )

    # === Setup ===
    def _restore(self, checkpoint, manager, epoch_counter):
        """Restores the newest intact checkpoint: a damaged one (a kill mid-write on a filesystem without atomic
        renames, a truncated copy) falls back to the one before, saying so."""
        for path in reversed(manager.checkpoints):
            try:
                # Every saved value must land in a variable and every variable must get one: a resume that
                # restored nothing (another model, a renamed layer) would otherwise train on from random weights.
                checkpoint.restore(path).assert_consumed()
            except AssertionError as error:
                raise ConfigError(
                    f"{path}: does not fit this model and optimizer ({str(error).splitlines()[0][:200]}); resume "
                    "with the arguments it was written with, or choose another --out."
                )
            except (tf.errors.OpError, ValueError, IndexError, OSError) as error:
                reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
                self.reporter.message(f"{path}: damaged ({reason}); trying the checkpoint before it.")
                continue
            self.reporter.message(f"Resuming from {path} (epoch {int(epoch_counter.numpy())} done).")
            return
        raise ConfigError(
            f"{manager.directory}: no intact checkpoint among {len(manager.checkpoints)}; the run cannot resume. "
            "Start it again with another --out."
        )

    def _checked(self, dataset):
        """Every image decoded before the first step: a corrupt file stops the run now, not an epoch later."""
        from tfyolo.data.image_check import checked_split

        dataset, bad = checked_split(dataset, skip_bad=self.config.skip_bad_images)
        if bad:
            self.reporter.message(f"{dataset.description}: skipped {len(bad)} unreadable image(s) (--skip-bad-images).")
        return dataset

    def _load_source(self, model_config):
        """The --weights model, and the config to build: its family, scale and padding (what its weights were made
        for), this run's classes, input size and activation (activations carry no weights)."""
        from tfyolo.importers.source_detector import load_source_detector

        source, metadata = load_source_detector(self.config.init_weights, self.config.imgsz)
        source_config = config_from_metadata(metadata, self.config.init_weights)
        made_for = (source_config.family, source_config.scale)
        if made_for != (model_config.family, model_config.scale):
            self.reporter.message(
                f"--weights {self.config.init_weights} is a {' '.join(made_for)} model: training that, not "
                f"{model_config.family} {model_config.scale}."
            )
        built = model_config.replace(
            family=source_config.family, scale=source_config.scale, padding=source_config.padding
        )
        return source, built

    def _build_models(self):
        """(model, EMA model): fresh float detectors (from --weights where given), or what `models` builds."""
        if self.models is not None:
            return self.models.build(self.reporter)
        model = build_yolo_detector(self.model_config)
        ema_model = build_yolo_detector(self.model_config, name="yolo_detector_ema")
        if self.source_model is not None:
            transferred = transfer_weights(model, self.source_model)
            kept = transferred["kept_initial"]
            self.reporter.message(
                f"--weights {self.config.init_weights}: {len(transferred['loaded'])} layers loaded"
                + (f"; freshly initialized (shapes differ, e.g. another class count): {kept}" if kept else "")
            )
            if not kept and self.config.lr0 is None:
                # bench-finetune: Ultralytics' PennFudan model restarted at the auto rate fell from 0.4465 to
                # 0.014 mAP50-95 after one epoch and ended at 0.434; at a tenth of it, 0.455.
                self.reporter.message(
                    "  every layer came from --weights: if that model already converged on this data, the auto "
                    "learning rate knocks it back before it recovers; a tenth of it (--lr0) keeps it."
                )
        if self.config.freeze:
            from tfyolo.models.transfer import freeze

            # The EMA copy is frozen alike, so that its weights stay in the same order as the model's.
            family = self.model_config.model_family
            frozen = freeze(model, self.config.freeze, family)
            freeze(ema_model, self.config.freeze, family)
            self.reporter.message(f"--freeze {self.config.freeze}: {len(frozen)} layers are not trained.")
        if self.config.compress:
            model, ema_model = self._wrap_for_compression(model, ema_model)
        return model, ema_model

    def _wrap_for_compression(self, model, ema_model):
        config = self.config
        total_steps = config.epochs * (len(self.train_data) // config.batch)
        # Both copies get the shares measured on the trained weights (the EMA copy holds the same ones here).
        shares = compression.layer_sparsities(model, config.sparsity) if config.compress == "prune" else None
        wrapped = [
            compression.wrap_for_compression(m, config.compress, config.clusters, total_steps, shares)
            for m in (model, ema_model)
        ]
        compression.start(wrapped[0], config.compress)
        if config.compress == "cluster":
            target = f"{config.clusters} shared values per layer"
        else:
            target = (
                f"{config.sparsity:.0%} zeros overall ({min(shares.values()):.0%} to {max(shares.values()):.0%} per "
                f"layer, by folded magnitude), reached at {compression.PRUNE_RAMP:.0%} of the run"
            )
        count = sum(compression.compressible(layer) for layer in model.layers)
        self.reporter.message(f"--compress {config.compress}: {count} convolution kernels, {target}.")
        return wrapped

    def _learning_rate(self):
        if self.config.lr0 is not None:
            return self.config.lr0
        # YOLOv8's "auto": AdamW with lr fitted to the class count (short runs on small data).
        return round(0.002 * 5 / (4 + self.model_config.num_classes), 6)

    def _optimizer(self):
        name = "adamw" if self.config.optimizer == "auto" else self.config.optimizer
        if name == "adamw":
            optimizer = keras.optimizers.AdamW(
                learning_rate=self._learning_rate(),
                weight_decay=self.config.weight_decay,
                beta_1=self.config.momentum,
                beta_2=0.999,
                jit_compile=False,
            )
            # YOLOv8 decays only convolution kernels, not BatchNorm parameters or biases.
            optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
        else:
            optimizer = keras.optimizers.SGD(
                learning_rate=self._learning_rate(), momentum=self.config.momentum, nesterov=True, jit_compile=False
            )
        if self.config.mixed_precision == "mixed_float16":
            optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
        return optimizer

    def _set_precision(self):
        warning = precision_warning(self.config.mixed_precision, bool(tf.config.list_physical_devices("GPU")))
        if warning:
            warnings.warn(warning, stacklevel=2)
        keras.mixed_precision.set_global_policy(self.config.mixed_precision or "float32")

    # === Training ===
    def fit(self):
        config = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        saved_args = self.out / TRAIN_ARGS_NAME
        if saved_args.is_file() and _without_out(_read_train_args(saved_args)) != _without_out(config.to_dict()):
            raise ConfigError(
                f"{saved_args}: {self.out} holds a run with other arguments; resume it with --resume or choose "
                "another --out."
            )
        atomic_write_json(saved_args, config.to_dict())
        # Python's, NumPy's and TensorFlow's generators at once: tf_keras draws the seeds of unseeded initializers
        # from Python's `random`, so tf.random.set_seed alone left the initial weights different in every process.
        keras.utils.set_random_seed(config.seed)
        self._set_precision()
        strategy = self.strategy = select_strategy(config.strategy)
        with strategy.scope():
            model, ema_model = self._build_models()
            optimizer = self._optimizer()
            optimizer.build(model.trainable_variables)
            ema = ModelEMA(model, ema_model, decay=config.ema_decay)
            epoch_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_done")
            best_fitness = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_fitness")
        keras.mixed_precision.set_global_policy("float32")

        checkpoint = tf.train.Checkpoint(
            model=model,
            ema_model=ema_model,
            optimizer=optimizer,
            ema_updates=ema.updates,
            epochs_done=epoch_counter,
            best_fitness=best_fitness,
        )
        manager = tf.train.CheckpointManager(checkpoint, self.out / "checkpoints", max_to_keep=2)
        if manager.checkpoints:
            self._restore(checkpoint, manager, epoch_counter)

        with strategy.scope():
            loss_fn = task_loss(self.model_config, config.imgsz, config.epochs)
        replicas = strategy.num_replicas_in_sync
        scaling = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
        # The one-to-one head's variables: its own loss term trains them alone (Ultralytics detaches its input).
        head_only = {id(v) for layer in branch_layers(model, "one2one") for v in layer.trainable_variables}
        head_only_variables = [v for v in model.trainable_variables if id(v) in head_only]

        def replica_step(images, boxes, classes, mask, *gt_masks):
            with tf.GradientTape(persistent=loss_fn.has_head_only_term) as tape:
                outputs = model(images, training=True)
                loss, head_loss, parts = loss_fn(outputs, boxes, classes, mask, *gt_masks)
                scaled = optimizer.get_scaled_loss(loss / replicas) if scaling else loss / replicas
                if head_loss is not None:
                    scaled_head = head_loss / replicas
                    scaled_head = optimizer.get_scaled_loss(scaled_head) if scaling else scaled_head
            gradients = tape.gradient(scaled, model.trainable_variables)
            if head_loss is not None:
                head_gradients = dict(
                    zip(map(id, head_only_variables), tape.gradient(scaled_head, head_only_variables))
                )
                gradients = [
                    head_gradients[id(v)] if id(v) in head_gradients and gradient is None else gradient
                    for v, gradient in zip(model.trainable_variables, gradients)
                ]
                loss = loss + head_loss
            values = tf.stack([loss, *(parts[name] for name in loss_fn.part_names)])
            if scaling:
                gradients = optimizer.get_unscaled_gradients(gradients)
            gradients, norm = tf.clip_by_global_norm(gradients, config.max_grad_norm)
            if scaling:
                # A loss-scaling optimizer skips a step with non-finite gradients itself and lowers its scale.
                finite = tf.constant(True)
            else:
                # One batch whose loss or gradients are not finite (a degenerate box, an overflow) makes the clip
                # (by a norm that is not finite) turn every gradient, then every weight, into NaN, and the run would
                # train NaN from then on: its gradients are zeroed instead and the step is counted as skipped.
                finite = tf.reduce_all(tf.math.is_finite(values)) & tf.math.is_finite(norm)
                gradients = [None if g is None else tf.where(finite, g, tf.zeros_like(g)) for g in gradients]
                values = tf.where(finite, values, tf.zeros_like(values))
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            skipped = 1.0 - tf.cast(finite, tf.float32)
            return tf.concat([values, [skipped]], axis=0) / replicas

        @tf.function
        def train_step(batch):
            per_replica = strategy.run(replica_step, args=batch)
            losses = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
            if config.ema:
                ema.update()
            return losses

        writer = tf.summary.create_file_writer(str(self.out / "tensorboard"))
        augment = AugmentConfig(
            mosaic=config.mosaic,
            translate=config.translate,
            scale=config.scale_jitter,
            hsv_h=config.hsv_h,
            hsv_s=config.hsv_s,
            hsv_v=config.hsv_v,
            fliplr=config.fliplr,
        )
        batches_per_epoch = len(self.train_data) // config.batch
        warmup_iterations = round(config.warmup_epochs * batches_per_epoch)
        runner = KerasRunner(
            ema_model if config.ema else model,
            reg_max=self.model_config.reg_max,
            postprocess=self.model_config.postprocess,
        )
        history_path = self.out / "history.json"
        start_epoch = int(epoch_counter.numpy())
        history = json.loads(history_path.read_text()) if history_path.is_file() and start_epoch else []
        # A kill between writing history.json and the checkpoint leaves a row the checkpoint never saw.
        history = [row for row in history if row["epoch"] <= start_epoch]
        if start_epoch >= config.epochs:
            self.reporter.message(f"{self.out}: all {config.epochs} epochs are done already.")
        suffix = self.models.suffix if self.models is not None else ".keras"  # see save_model_atomic for .h5
        previous = (read_model_file_metadata(self.out / f"best{suffix}") if start_epoch else None) or {}
        best_epoch, best_metrics = previous.get("best_epoch"), previous.get("val_metrics")
        if start_epoch == 0 and config.val_interval > 0 and getattr(self.models, "validates_start", False):
            best_epoch, best_metrics = 0, self._validate_start(runner, ema_model if config.ema else model, suffix)
            best_fitness.assign(fitness(best_metrics))
            # Epoch 0 in the history: the start's scores, and no training figures (no step was taken).
            validated = VALIDATION_KEYS + tuple(key for key in TASK_FIGURES if key in best_metrics)
            history = [dict.fromkeys(HISTORY_KEYS) | {key: best_metrics[key] for key in validated}]
            history[0].update(epoch=0, best=True)
            atomic_write_json(history_path, history)
        for epoch in range(start_epoch, config.epochs):
            use_mosaic = config.mosaic > 0 and epoch < config.epochs - config.close_mosaic
            data = training_dataset(
                self.train_data,
                config.imgsz,
                config.batch,
                self.max_boxes,
                augment,
                use_mosaic,
                config.seed,
                epoch,
                self.mask_ratio,
            )
            data = strategy.experimental_distribute_dataset(data)
            loss_fn.start_epoch(epoch)
            self.reporter.epoch_start(epoch, config.epochs, batches_per_epoch)
            loss_names = ("loss", *loss_fn.part_names)
            totals, started, step_times = np.zeros(len(loss_names)), time.perf_counter(), []
            skipped = 0
            for step, batch in enumerate(data):
                iteration = epoch * batches_per_epoch + step
                learning_rate = warmup_and_decay(
                    iteration,
                    epoch,
                    warmup_iterations,
                    config.epochs,
                    self._learning_rate(),
                    config.lrf,
                    config.schedule,
                )
                optimizer.learning_rate.assign(learning_rate)
                step_start = time.perf_counter()
                *losses, step_skipped = train_step(batch).numpy()
                step_times.append(time.perf_counter() - step_start)
                totals += losses
                skipped += round(step_skipped)
                self.reporter.batch_end(dict(zip(loss_names, totals / max(step + 1 - skipped, 1))))
            self._check_skipped(epoch, skipped, len(step_times))
            train_seconds = time.perf_counter() - started
            # The first step of a process includes tracing; throughput is measured on the steps after it.
            steady = step_times[1:] if len(step_times) > 1 else step_times
            images_per_second = config.batch / float(np.mean(steady))

            validate = config.val_interval > 0 and (
                (epoch + 1) % config.val_interval == 0 or epoch + 1 == config.epochs
            )
            metrics = None
            if validate:
                evaluation = evaluate(runner, self.val_data, batch_size=config.val_batch, cache_images=True)
                metrics = validation_figures(evaluation.all_metrics)
            epoch_counter.assign(epoch + 1)
            batches = max(batches_per_epoch - skipped, 1)
            summary = {
                "epoch": epoch + 1,
                "loss": float(totals[0] / batches),
                "box_loss": float(totals[1] / batches),
                "class_loss": float(totals[2] / batches),
                "dfl_loss": float(totals[3] / batches),
                # A task's own terms (segmentation's mask_loss); a detector's row is as before.
                **{f"{name}_loss": float(total / batches) for name, total in zip(loss_names[4:], totals[4:])},
                "map50_95": metrics["map50_95"] if metrics else None,
                "map50": metrics["map50"] if metrics else None,
                "precision": metrics["precision"] if metrics else None,
                "recall": metrics["recall"] if metrics else None,
                **{key: metrics[key] for key in TASK_FIGURES if metrics and key in metrics},
                "learning_rate": float(learning_rate),
                "train_seconds": train_seconds,
                "images_per_second": images_per_second,
                "mosaic": use_mosaic,
                **({"skipped_steps": skipped} if skipped else {}),
            }
            improved = metrics is not None and fitness(metrics) > float(best_fitness.numpy())
            if improved:
                best_fitness.assign(fitness(metrics))
            history.append(summary)
            with writer.as_default(step=epoch + 1):
                for key in list(summary)[1:]:
                    # Every figure of the row that was measured (not the epoch itself, not the mosaic flag).
                    if isinstance(summary[key], float):
                        tf.summary.scalar(key, summary[key])
            export = ema_model if config.ema else model
            if config.compress:
                export = compression.strip(export, config.compress)
            if improved:
                best_epoch, best_metrics = epoch + 1, metrics
            save_model_atomic(export, self.out / f"last{suffix}", self._metadata(epoch + 1, metrics, best_epoch))
            if improved or best_metrics is None:
                # Nothing validated yet (val_interval): best follows last until a validated epoch says otherwise.
                self._save_best(export, suffix, best_epoch or epoch + 1, best_metrics, best_epoch)
            atomic_write_json(history_path, history)
            # The checkpoint goes last: a crash before it replays this epoch, never skips it.
            manager.save(checkpoint_number=epoch + 1)
            summary["best"] = improved
            self.reporter.epoch_end(summary)
        writer.flush()
        return history

    def _validate_start(self, runner, export, suffix):
        """Validates the model as it starts, before any step, and saves it as the run's best so far: a model that
        starts trained (QAT's) then has to beat its own start on val to replace it, and a fine-tune that only
        loses returns its start. Returns the start's metrics."""
        evaluation = evaluate(runner, self.val_data, batch_size=self.config.val_batch, cache_images=True)
        metrics = validation_figures(evaluation.all_metrics)
        self._save_best(export, suffix, 0, metrics, 0)
        self.reporter.message(
            f"epoch   0  (the start, before any step)  val mAP50 {metrics['map50']:.3f} "
            f"mAP50-95 {metrics['map50_95']:.3f}" + task_figures_text(metrics)
        )
        return metrics

    def _check_skipped(self, epoch, skipped, steps):
        """Says how many of the epoch's steps were skipped for a non-finite loss or gradient; an epoch that skipped
        more than half of them has diverged, and the run stops in one line before saving it (last.keras and the
        checkpoints keep the epoch before)."""
        if not skipped:
            return
        if skipped * 2 > steps:
            suffix = self.models.suffix if self.models is not None else ".keras"
            raise TfyoloError(
                f"epoch {epoch + 1}: {skipped} of {steps} steps had a non-finite loss or gradient: training diverged. "
                f"The epoch before is in {self.out / ('last' + suffix)}; train again with a lower --lr0."
            )
        self.reporter.message(f"epoch {epoch + 1}: skipped {skipped} of {steps} steps (non-finite loss or gradient).")

    def _save_best(self, model, suffix, epoch, metrics, best_epoch):
        """Saves `model` (the weights of `epoch`, which scored `metrics`) as the run's best, and each of its heads
        alone for a model holding both."""
        save_model_atomic(model, self.out / f"best{suffix}", self._metadata(epoch, metrics, best_epoch))
        if self.model_config.head == ALL_HEADS:
            self._save_each_head(model, epoch, metrics, best_epoch)

    def _save_each_head(self, model, epoch, metrics, best_epoch):
        """A model holding both heads (YOLO26) is also saved once per head, `best_one2one.keras` and
        `best_one2many.keras`: the same weights ending in one head, which is what `tfyolo convert` takes (its
        metadata says how its outputs are post-processed). The validation metrics are the one-to-many head's."""
        for head in self.model_config.model_family.heads:
            config = self.model_config.replace(head=head)
            single = build_yolo_detector(config)
            transferred = transfer_weights(single, model)
            if transferred["kept_initial"]:
                raise ConfigError(f"the {head} model lacks layers of the trained one: {transferred['kept_initial']}")
            save_model_atomic(
                single, self.out / f"best_{head}.keras", self._metadata(epoch, metrics, best_epoch, config)
            )

    def _metadata(self, epoch, metrics, best_epoch, model_config=None):
        """The metadata saved inside a model file of this run: its weights are from `epoch`, which scored
        `metrics` (None: not validated); `best_epoch` is the run's best validated epoch so far (None: none yet).
        model_config: the saved model's architecture, when it is not the trained one (one of its heads)."""
        config = self.config
        return detector_metadata(
            model_config or self.model_config,
            self.train_data.names,
            data=str(Path(config.data).resolve()),
            data_sha256=dataset_fingerprint(self.train_data, self.val_data),
            train_args=config.to_dict(),
            epoch=epoch,
            best_epoch=best_epoch,
            compress=config.compress
            and {"method": config.compress, "clusters": config.clusters, "sparsity": config.sparsity},
            val_metrics=metrics and dict(metrics),
            versions={"tfyolo": tfyolo.__version__, "tensorflow": tf.__version__},
            **(self.models.details if self.models is not None else {"qat": False}),
        )


def best_validated(history):
    """The history row with the best `fitness` (val mAP50-95, plus a task's own), or None when none was validated."""
    validated = [row for row in history if row["map50_95"] is not None]
    return max(validated, key=fitness) if validated else None


def resume_config(out):
    """The TrainConfig a run in `out` was started with."""
    path = Path(out) / TRAIN_ARGS_NAME
    if not path.is_file():
        raise ConfigError(f"{path}: nothing to resume; {out} holds no training run.")
    values = _read_train_args(path)
    # The folder being resumed is the run: a copied or moved run folder continues where it is now.
    values["out"] = str(out)
    return TrainConfig.from_dict(values, source=str(path))


def _without_out(values):
    return {key: value for key, value in values.items() if key != "out"}


def _read_train_args(path):
    try:
        values = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: damaged ({error}); it should hold the run's arguments as JSON.")
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: damaged; it should hold the run's arguments as a JSON object.")
    return values
