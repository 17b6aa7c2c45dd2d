"""Transfer learning: every layer whose shape fits is loaded, a class head of another class count starts fresh."""

import numpy as np
import pytest

from tfyolo.models.model_config import ModelConfig
from tfyolo.models.transfer import freeze, transfer_weights
from tfyolo.models.yolo_detector import build_yolo_detector


@pytest.fixture(scope="module")
def one_class_source():
    source = build_yolo_detector(ModelConfig(num_classes=1, input_size=64, padding="symmetric"))
    rng = np.random.default_rng(0)
    source.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in source.get_weights()])
    return source


def test_every_fitting_layer_is_loaded_and_the_class_head_starts_fresh(one_class_source):
    model = build_yolo_detector(ModelConfig(num_classes=3, input_size=64, padding="symmetric"))
    report = transfer_weights(model, one_class_source)
    assert report["kept_initial"] == ["head0_cls_pred", "head1_cls_pred", "head2_cls_pred"]
    assert len(report["loaded"]) == sum(1 for layer in model.layers if layer.weights) - 3
    for name in ("stem_conv", "stage2_cv1b_bn", "head2_box_pred", "head1_cls2_conv"):
        for ours, theirs in zip(model.get_layer(name).get_weights(), one_class_source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)


def test_freezing_the_backbone(one_class_source, tiny_synthetic, tmp_path):
    from tfyolo.models.detector_metadata import detector_metadata
    from tfyolo.models.model_io import save_model_atomic
    from tfyolo.training.train_config import TrainConfig
    from tfyolo.training.trainer import Trainer

    source_config = ModelConfig(num_classes=1, input_size=64, padding="symmetric")
    save_model_atomic(one_class_source, tmp_path / "source.keras", detector_metadata(source_config, ["person"]))
    config = TrainConfig(
        data=str(tiny_synthetic),
        out=str(tmp_path / "run"),
        imgsz=64,
        epochs=1,
        batch=4,
        init_weights=str(tmp_path / "source.keras"),
        freeze="backbone",
        scale="s",
    )
    trainer = Trainer(config)
    assert trainer.model_config.scale == "n" and trainer.model_config.padding == "symmetric"  # the source's
    model, ema_model = trainer._build_models()
    frozen = {layer.name for layer in model.layers if not layer.trainable and layer.weights}
    assert frozen and all(name.startswith(("stem_", "down", "stage", "sppf_")) for name in frozen)
    assert "neck_td4_cv2_conv" not in frozen and "head0_cls_pred" not in frozen
    trainable = {id(weight) for weight in model.trainable_weights}
    assert not any(id(weight) in trainable for name in frozen for weight in model.get_layer(name).weights)
    # The EMA copy keeps the model's weight order (frozen alike), or the averaging would pair wrong tensors.
    assert [w.shape for w in ema_model.weights] == [w.shape for w in model.weights]
    np.testing.assert_array_equal(
        model.get_layer("stem_conv").get_weights()[0], one_class_source.get_layer("stem_conv").get_weights()[0]
    )
    with pytest.raises(Exception, match="freeze"):
        freeze(model, "neck")
