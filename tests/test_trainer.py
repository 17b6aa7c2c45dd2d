import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tfyolo.errors import ConfigError
from tfyolo.training.model_ema import warmup_and_decay
from tfyolo.training.train_config import TrainConfig
from tfyolo.training.trainer import SilentReporter, Trainer, resume_config


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


def test_train_kill_and_resume(tiny_synthetic, tmp_path):
    config = tiny_config(tiny_synthetic, tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, reporter=CrashInEpoch(1)).fit()
    # Epoch 1 finished and was saved atomically before the kill in epoch 2.
    assert (tmp_path / "run" / "last.keras").is_file()
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 1

    reporter = CrashInEpoch(-1)
    history = Trainer(resume_config(tmp_path / "run"), reporter=reporter).fit()
    assert [row["epoch"] for row in history] == [1, 2]
    assert any("Resuming" in message for message in reporter.messages)
    assert all(np.isfinite(row["loss"]) for row in history)
    assert history[0]["mosaic"] and not history[1]["mosaic"]  # close_mosaic=1: the last epoch has no mosaic
    metadata = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert metadata["names"] == ["circle", "square"] and metadata["imgsz"] == 64
    assert len(metadata["data_sha256"]) == 64

    from tfyolo.models.model_io import load_keras_model

    model = load_keras_model(tmp_path / "run" / "best.keras")
    assert model.output_shape["class_logits"] == (None, 84, 2)


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
        print("replicas", tf.distribute.MirroredStrategy().num_replicas_in_sync)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas 2" in result.stdout


def test_mixed_precision_warning_follows_the_hardware():
    from tfyolo.training.trainer import precision_warning

    assert precision_warning(None, has_gpu=False) is None
    assert precision_warning("mixed_float16", has_gpu=True) is None
    assert "measured 3-9x slower" in precision_warning("mixed_float16", has_gpu=False, flags={"avx2"})
    assert precision_warning("mixed_bfloat16", has_gpu=False, flags={"avx512_bf16"}) is None
    assert "avx512_bf16" in precision_warning("mixed_bfloat16", has_gpu=False, flags={"avx2"})
