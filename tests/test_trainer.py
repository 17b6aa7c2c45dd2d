import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tfyolo.errors import ConfigError
from tfyolo.training.model_ema import warmup_and_decay
from tfyolo.training.train_config import TrainConfig
from tfyolo.training.trainer import SilentReporter, Trainer


def tiny_config(data, out, **changes):
    values = dict(
        data=str(data),
        out=str(out),
        imgsz=64,
        epochs=2,
        batch=4,
        warmup_epochs=0.5,
        close_mosaic=1,
        val_batch=8,
        seed=1,
    )
    values.update(changes)
    return TrainConfig(**values)


class CrashInEpoch(SilentReporter):
    """Simulates a kill in the middle of epoch `epoch` (0-based)."""

    def __init__(self, epoch):
        self.crash_epoch = epoch
        self.current = None
        self.messages = []

    def message(self, text):
        self.messages.append(text)

    def epoch_start(self, epoch, epochs, num_batches):
        self.current = epoch

    def batch_end(self, losses):
        if self.current == self.crash_epoch:
            raise KeyboardInterrupt("simulated kill")


def _weights(path):
    from tfyolo.models.model_io import load_keras_model

    return load_keras_model(path).get_weights()


TRAIN_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from tfyolo.training.train_config import TrainConfig
    from tfyolo.training.trainer import SilentReporter, Trainer, resume_config

    class KillInEpoch(SilentReporter):
        def __init__(self, epoch):
            self.kill_epoch, self.current = epoch, None
        def epoch_start(self, epoch, epochs, num_batches):
            self.current = epoch
        def batch_end(self, losses):
            if self.current == self.kill_epoch:
                os.kill(os.getpid(), signal.SIGKILL)

    data, out, mode = sys.argv[1:4]
    if mode == "resume":
        Trainer(resume_config(out)).fit()
    else:
        config = TrainConfig(data=data, out=out, imgsz=64, epochs=2, batch=4, warmup_epochs=0.5, close_mosaic=1,
                             val_batch=8, seed=1)
        Trainer(config, reporter=KillInEpoch(1 if mode == "kill" else -1)).fit()
""")


def _train(data, out, mode):
    return subprocess.run(
        [sys.executable, "-c", TRAIN_SCRIPT, str(data), str(out), mode], capture_output=True, text=True
    )


@pytest.mark.large
def test_sigkill_and_resume_equals_an_uninterrupted_run(tiny_synthetic, tmp_path):
    killed = _train(tiny_synthetic, tmp_path / "run", "kill")
    assert killed.returncode == -9, killed.stderr[-2000:]
    # Epoch 1 finished and was saved atomically before the kill in epoch 2.
    assert (tmp_path / "run" / "last.keras").is_file()
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 1
    resumed = _train(tiny_synthetic, tmp_path / "run", "resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[0]["mosaic"] and not history[1]["mosaic"]  # close_mosaic=1: the last epoch has no mosaic
    from tfyolo.metadata import find_model_metadata

    metadata = find_model_metadata(tmp_path / "run" / "last.keras")
    assert metadata["names"] == ["circle", "square"] and metadata["imgsz"] == 64
    assert len(metadata["data_sha256"]) == 64

    # The oracle: the same run in a fresh process, never interrupted. A resume that restored nothing, or the
    # wrong step, epoch, learning rate, EMA or data order, would end elsewhere.
    straight = _train(tiny_synthetic, tmp_path / "straight", "straight")
    assert straight.returncode == 0, straight.stderr[-2000:]
    uninterrupted = json.loads((tmp_path / "straight" / "history.json").read_text())
    for resumed_row, straight_row in zip(history, uninterrupted):
        for key in ("loss", "box_loss", "class_loss", "dfl_loss"):
            assert resumed_row[key] == straight_row[key], (key, resumed_row[key], straight_row[key])
    for resumed, expected in zip(
        _weights(tmp_path / "run" / "last.keras"), _weights(tmp_path / "straight" / "last.keras")
    ):
        np.testing.assert_array_equal(resumed, expected)


def test_resume_refuses_a_checkpoint_that_restores_nothing(tiny_synthetic, tmp_path):
    from tfyolo.compat import tf

    # A checkpoint of something else: restoring it with expect_partial() would "resume" from random weights.
    stranger = tf.train.Checkpoint(other=tf.Variable(1.0))
    tf.train.CheckpointManager(stranger, tmp_path / "run" / "checkpoints", max_to_keep=1).save(checkpoint_number=1)
    with pytest.raises(ConfigError, match="does not fit this model"):
        Trainer(tiny_config(tiny_synthetic, tmp_path / "run", epochs=1)).fit()


def test_run_folder_with_other_arguments_is_refused(tiny_synthetic, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "train_args.json").write_text(json.dumps({"data": "elsewhere"}))
    with pytest.raises(ConfigError, match="holds a run with other arguments"):
        Trainer(tiny_config(tiny_synthetic, tmp_path / "run")).fit()


def test_batch_larger_than_split_is_a_clear_error(tiny_synthetic, tmp_path):
    from tfyolo.errors import DataError

    with pytest.raises(DataError, match="fewer than one batch of 64"):
        Trainer(tiny_config(tiny_synthetic, tmp_path / "run", batch=64)).fit()


def test_learning_rate_schedule():
    # Warmup: linear from 0 to the epoch's target over 10 iterations; linear decay lr0 -> lr0 * lrf over epochs.
    assert warmup_and_decay(5, 0, 10, 10, 0.01, 0.01, "linear") == pytest.approx(0.005)
    assert warmup_and_decay(50, 5, 10, 10, 0.01, 0.01, "linear") == pytest.approx(0.01 * (0.5 * 0.99 + 0.01))
    # Cosine halfway: ((1 - cos(pi/2)) / 2) * (lrf - 1) + 1 = 0.5 * -0.99 + 1 = 0.505.
    assert warmup_and_decay(50, 5, 10, 10, 0.01, 0.01, "cosine") == pytest.approx(0.00505)


@pytest.mark.large
def test_mirrored_strategy_on_two_logical_cpus(tiny_synthetic, tmp_path):
    # Logical devices must be configured before TensorFlow touches the CPU, hence a fresh process.
    script = textwrap.dedent(f"""
        from tfyolo.compat import tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tfyolo.training.train_config import TrainConfig
        from tfyolo.training.trainer import Trainer
        config = TrainConfig(data={str(tiny_synthetic)!r}, out={str(tmp_path / "mirrored")!r}, imgsz=64, epochs=1,
                             batch=4, strategy="mirrored", val_batch=8)
        trainer = Trainer(config)
        history = trainer.fit()
        import numpy as np
        assert np.isfinite(history[0]["loss"]), history
        print("replicas", trainer.strategy.num_replicas_in_sync)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas 2" in result.stdout


def _free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.large
def test_two_multiworker_processes_on_loopback_end_with_the_same_weights(tiny_synthetic, tmp_path):
    """Two MultiWorkerMirroredStrategy workers (TF_CONFIG, one process each, loopback only), one epoch: the
    all-reduce must leave both with identical weights."""
    import os

    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    script = textwrap.dedent("""
        import sys
        import numpy as np
        from tfyolo.training.train_config import TrainConfig
        from tfyolo.training.trainer import Trainer
        data, out = sys.argv[1], sys.argv[2]
        config = TrainConfig(data=data, out=out, imgsz=64, epochs=1, batch=4, strategy="multiworker", val_interval=0)
        trainer = Trainer(config)
        trainer.fit()
        assert trainer.strategy.num_replicas_in_sync == 2
        from tfyolo.models.model_io import load_keras_model
        np.savez(out + "/weights.npz", *load_keras_model(out + "/last.keras").get_weights())
    """)
    workers = []
    for index in range(2):
        environment = dict(
            os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        )
        workers.append(
            subprocess.Popen(
                [sys.executable, "-c", script, str(tiny_synthetic), str(tmp_path / f"worker{index}")],
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        errors = [worker.communicate(timeout=600)[1] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for worker, error in zip(workers, errors):
        assert worker.returncode == 0, error[-3000:]
    first, second = (np.load(tmp_path / f"worker{index}" / "weights.npz") for index in range(2))
    assert len(first.files) == len(second.files) > 100
    for name in first.files:
        np.testing.assert_array_equal(first[name], second[name])


def test_mixed_precision_warning_follows_the_hardware():
    from tfyolo.training.trainer import precision_warning

    assert precision_warning(None, has_gpu=False) is None
    assert precision_warning("mixed_float16", has_gpu=True) is None
    assert "measured 3-9x slower" in precision_warning("mixed_float16", has_gpu=False, flags={"avx2"})
    assert precision_warning("mixed_bfloat16", has_gpu=False, flags={"avx512_bf16"}) is None
    assert "avx512_bf16" in precision_warning("mixed_bfloat16", has_gpu=False, flags={"avx2"})


def test_a_segmenter_s_best_epoch_counts_its_masks_as_ultralytics_fitness_does():
    from tfyolo.training.trainer import best_validated, fitness

    # Epoch 2 has the better boxes (+0.01) but loses 0.03 of mask mAP50-95: epoch 1 is the better model.
    history = [
        {"epoch": 0, "map50_95": None},
        {"epoch": 1, "map50_95": 0.40, "mask_map50_95": 0.30},
        {"epoch": 2, "map50_95": 0.41, "mask_map50_95": 0.27},
    ]
    assert best_validated(history)["epoch"] == 1
    assert fitness(history[1]) == 0.40 + 0.30
    # A detector's rows have no task figure: its fitness is its box mAP50-95, as before tasks.
    assert best_validated([{"epoch": 1, "map50_95": 0.40}, {"epoch": 2, "map50_95": 0.41}])["epoch"] == 2


class NaNOnSteps:
    """The run's own loss, but NaN on the given steps (counted across the run), as a batch with a degenerate box
    or an overflow makes it."""

    def __init__(self, loss_fn, steps):
        from tfyolo.compat import tf

        self.loss_fn, self.steps = loss_fn, tf.constant(steps, tf.int64)
        self.calls = tf.Variable(0, dtype=tf.int64, trainable=False)

    def __getattr__(self, name):
        return getattr(self.loss_fn, name)

    def __call__(self, *args):
        from tfyolo.compat import tf

        loss, head_only, parts = self.loss_fn(*args)
        poisoned = tf.reduce_any(tf.equal(self.steps, self.calls))
        self.calls.assign_add(1)
        return tf.where(poisoned, tf.constant(float("nan")), loss), head_only, parts


class Messages(SilentReporter):
    def __init__(self):
        self.messages = []

    def message(self, text):
        self.messages.append(text)


def nan_loss_run(tiny_synthetic, tmp_path, monkeypatch, steps):
    import tfyolo.training.trainer as trainer

    real = trainer.task_loss
    monkeypatch.setattr(trainer, "task_loss", lambda *args: NaNOnSteps(real(*args), steps))
    reporter = Messages()
    run = Trainer(tiny_config(tiny_synthetic, tmp_path / "run", epochs=1, ema=False), reporter=reporter)
    return run, reporter


def test_a_step_with_a_non_finite_loss_is_skipped_and_the_weights_stay_finite(tiny_synthetic, tmp_path, monkeypatch):
    """One NaN step of four (19 images, batch 4): without the guard, the global-norm clip turns every gradient into
    NaN and so every weight; with it the step is skipped, counted, said, and the epoch's loss is the mean of the
    three others."""
    run, reporter = nan_loss_run(tiny_synthetic, tmp_path, monkeypatch, steps=[1])
    history = run.fit()
    assert history[-1]["skipped_steps"] == 1 and np.isfinite(history[-1]["loss"])
    assert "epoch 1: skipped 1 of 4 steps (non-finite loss or gradient)." in reporter.messages
    weights = _weights(tmp_path / "run" / "last.keras")
    assert all(np.all(np.isfinite(value)) for value in weights)


@pytest.mark.large  # 26 s of tracing for a one-line refusal; the skip itself is the fast test above
def test_an_epoch_of_mostly_non_finite_steps_stops_the_run_in_one_line(tiny_synthetic, tmp_path, monkeypatch):
    from tfyolo.errors import TfyoloError

    run, _ = nan_loss_run(tiny_synthetic, tmp_path, monkeypatch, steps=[0, 1, 2])
    with pytest.raises(TfyoloError, match=r"epoch 1: 3 of 4 steps had a non-finite loss or gradient") as error:
        run.fit()
    assert "\n" not in str(error.value) and not (tmp_path / "run" / "last.keras").exists()
