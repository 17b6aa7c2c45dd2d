"""A cluster_int8 / prune_int8 recipe's training stages: the float model fine-tuned into shared weights or zeros
(`tfyolo compress`), then structure-preserving QAT (`tfyolo qat --preserve`), both on the train split and without
validating on the split the artifact is scored on. The job then converts the QAT model with int8, as any QAT model.
"""

from pathlib import Path

from tfyolo.errors import ConfigError
from tfyolo.jobs.progress import TrainingProgress
from tfyolo.qat.qat_training import trainer_for
from tfyolo.training.train_config import COMPRESS_FINE_TUNE, QAT_FINE_TUNE, TrainConfig
from tfyolo.training.trainer import Trainer


def fine_tune_for(recipe, model_path, data, input_size, work, progress):
    """Runs the recipe's two training stages into `work`; returns the path of the QAT model to convert."""
    if not data or not Path(data).is_file():
        raise ConfigError(
            f"recipe {recipe.name!r} fine-tunes the model on its training data: the model names no dataset that "
            "is here and no --data was given."
        )
    folder = Path(work) / f"{recipe.name}_stages"
    compressed = TrainConfig(
        data=str(data),
        out=str(folder / "compress"),
        imgsz=input_size,
        epochs=recipe.compress_epochs,
        val_interval=0,
        init_weights=str(model_path),
        compress=recipe.compress,
        clusters=recipe.clusters,
        sparsity=recipe.sparsity,
        **COMPRESS_FINE_TUNE,
    )
    progress.message(f"    {recipe.compress}: {recipe.compress_epochs} epoch(s) of fine-tuning into {compressed.out}")
    Trainer(compressed, reporter=TrainingProgress(progress, recipe.compress)).fit()
    qat = TrainConfig(
        data=str(data),
        out=str(folder / "qat"),
        imgsz=input_size,
        epochs=recipe.qat_epochs,
        val_interval=0,
        qat_from=str(Path(compressed.out) / "last.keras"),
        qat_preserve=recipe.compress,
        **dict(QAT_FINE_TUNE, ema=recipe.compress != "cluster"),
    )
    progress.message(f"    {recipe.compress}-preserving QAT: {recipe.qat_epochs} epoch(s) into {qat.out}")
    trainer_for(qat, reporter=TrainingProgress(progress, f"{recipe.compress} QAT")).fit()
    return Path(qat.out) / "last.h5"
