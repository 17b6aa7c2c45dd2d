"""Quantization-aware training: the trainer of `tfyolo.training`, given the models it trains from here (tfmot
wrappers of a trained float model, their fake-quant ranges seeded by a calibration pass)."""

from pathlib import Path

from tfyolo.data.calibration_images import load_calibration_images
from tfyolo.errors import ConfigError
from tfyolo.metadata import find_model_metadata
from tfyolo.models.detect_head import BOX_OUTPUT, CLASS_OUTPUT
from tfyolo.models.detector_metadata import config_from_metadata
from tfyolo.models.model_config import ModelConfig
from tfyolo.models.model_io import load_keras_model
from tfyolo.qat.qat_model import build_qat_model, seed_quantization_ranges
from tfyolo.training import compression
from tfyolo.training.trainer import Trainer


def _float_config(model, metadata, where):
    """The float model's ModelConfig from its metadata; for a model saved without metadata, what its tensors say
    (classes, input size, reg_max) on the legacy family: QAT needs them for its loss, not to rebuild anything."""
    if (metadata or {}).get("model") or (metadata or {}).get("model_config"):
        return config_from_metadata(metadata, where)
    return ModelConfig(
        num_classes=int(model.output_shape[CLASS_OUTPUT][-1]),
        input_size=int(model.input_shape[1]),
        reg_max=int(model.output_shape[BOX_OUTPUT][-1]) // 4,
    )


class QATModels:
    """What a QAT run trains (the `models` of `tfyolo.training.trainer.Trainer`): the float model `config.qat_from`
    wrapped by tfmot (everything, or all but the head when staged; with a clustered or pruned model's structure
    kept when `qat_preserve`), its ranges seeded from `qat_calibration_images` train images."""

    suffix = ".h5"  # tf_keras' .keras format does not round-trip tfmot's QuantizeLayer
    # The seeded model already is a quantized detector as good as PTQ's: validated before the first step, it is
    # the best to beat (history's epoch 0). A short fine-tune on a small set can lose: on the imported YOLO26n
    # one-to-one head one seed of three never beat its start, and its best epoch's int8 fell 0.79 pt below float.
    validates_start = True

    def __init__(self, config, num_classes):
        self.config = config
        self.float_model = load_keras_model(config.qat_from)
        self.model_config = _float_config(self.float_model, find_model_metadata(config.qat_from), config.qat_from)
        if self.model_config.num_classes != num_classes:
            raise ConfigError(
                f"{config.qat_from} predicts {self.model_config.num_classes} classes but {config.data} has "
                f"{num_classes}."
            )
        if self.model_config.input_size != config.imgsz:
            raise ConfigError(
                f"{config.qat_from} takes {self.model_config.input_size}px inputs; QAT must use the same --imgsz, "
                f"received {config.imgsz}."
            )
        self.details = {
            "qat": True,
            "qat_staged": bool(config.qat_staged),
            "qat_from": str(Path(config.qat_from).resolve()),
            "qat_preserve": config.qat_preserve,
        }

    def build(self, reporter):
        config = self.config
        if config.qat_preserve == "cluster":
            # CQAT learns with one int8 grid per layer; the float model on disk (and its PTQ) keeps its palette.
            compression.one_grid_per_layer(self.float_model)

        def build():
            return build_qat_model(
                self.float_model,
                staged=config.qat_staged,
                preserve=config.qat_preserve,
                family=self.model_config.model_family,
            )

        model = build()
        images, summary = load_calibration_images(
            config.data, config.imgsz, config.qat_calibration_images, seed=config.seed
        )
        count = seed_quantization_ranges(model, self.float_model, images)
        reporter.message(
            f"QAT: seeded {count} fake-quant ranges from {summary['images_used']} images of {summary['source']}."
        )
        return model, build()


def trainer_for(config, reporter=None):
    """The Trainer of `config`: a QAT run's (`config.qat_from`) or a float one's."""
    if not config.qat_from:
        return Trainer(config, reporter=reporter)
    from tfyolo.data.detection_dataset import DetectionDataset

    num_classes = DetectionDataset.from_data_yaml(config.data, "train").num_classes
    return Trainer(config, reporter=reporter, models=QATModels(config, num_classes))
