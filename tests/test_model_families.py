"""Model families as data: every family's builder, scales, layer roles and metadata, and the YOLO11 blocks' math."""

import numpy as np
import pytest

from tests.conftest import SHARED
from tests.ultralytics_layouts import write_ultralytics_checkpoint
from tfyolo.errors import ConfigError
from tfyolo.models.families import FAMILIES
from tfyolo.models.model_config import ModelConfig


def trainable_parameters(model):
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


# Ultralytics' own summaries of cfg/models/11/yolo11.yaml at 80 classes ("parameters, gradients"): the gradients
# exclude the fixed 16 weights of the DFL conv, which is arithmetic in tfyolo's decode.
YOLO11_GRADIENTS = {"n": 2_624_064, "s": 9_458_736, "m": 20_114_672, "l": 25_372_144, "x": 56_966_160}
# cfg/models/v8/yolov8.yaml: l 43,691,520 and x 68,229,648 parameters, minus the 16 DFL weights.
YOLOV8_LARGE = {"l": 43_691_504, "x": 68_229_632}


def scales(names, fast):
    """The fast suite builds the small scales; the big ones (seconds each, mostly weight initialization) are large."""
    return [name if name in fast else pytest.param(name, marks=pytest.mark.large) for name in names]


@pytest.mark.parametrize("scale", scales("nsmlx", fast="ns"))
def test_yolo11_parameter_counts_equal_ultralytics(scale):
    from tfyolo.models.yolo_detector import build_yolo_detector

    model = build_yolo_detector(ModelConfig(num_classes=80, family="yolo11", scale=scale, input_size=64))
    assert trainable_parameters(model) == YOLO11_GRADIENTS[scale]


@pytest.mark.parametrize("scale", scales("lx", fast=""))
def test_yolov8_large_scales_equal_ultralytics(scale):
    from tfyolo.models.yolo_detector import build_yolo_detector

    model = build_yolo_detector(ModelConfig(num_classes=80, family="yolov8", scale=scale, input_size=64))
    assert trainable_parameters(model) == YOLOV8_LARGE[scale]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_is_a_flat_graph_of_the_layers_a_model_file_may_hold(family):
    """tfmot clones a model layer by layer (no Lambda, TFOpLambda or nested model), and the model-file check admits
    only these classes: a family that used another would have its own files refused."""
    from tfyolo.models.model_file_check import KNOWN_LAYERS
    from tfyolo.models.yolo_detector import build_yolo_detector

    model = build_yolo_detector(ModelConfig(num_classes=2, family=family, input_size=64))
    kinds = {type(layer).__name__ for layer in model.layers}
    assert kinds <= KNOWN_LAYERS - {"Functional", "QuantizeWrapperV2", "QuantizeLayer"}, kinds - KNOWN_LAYERS
    sections = {FAMILIES[family].section_of(layer.name) for layer in model.layers}
    assert sections == {"backbone", "neck", "head"}


def test_yolo11_layer_roles_and_freezing_the_backbone(tmp_path):
    from tfyolo.models.transfer import freeze
    from tfyolo.models.yolo_detector import build_yolo_detector

    family = FAMILIES["yolo11"]
    model = build_yolo_detector(ModelConfig(num_classes=2, family="yolo11", input_size=64))
    assert family.section_of("psa_m0_attn_h0_q_conv") == "backbone" and family.section_of("sppf_cv1_conv") == "backbone"
    assert family.section_of("neck_out5_m0_cv3_conv") == "neck"
    assert family.section_of("head2_cls1_dw_conv") == "head"
    frozen = set(freeze(model, "backbone", family))
    trainable = {layer.name for layer in model.layers if layer.trainable and layer.weights}
    assert "psa_m0_attn_h0_q_conv" in frozen and "stem_conv" in frozen
    assert all(name.startswith(("neck_", "head")) for name in trainable) and not frozen & trainable


def test_scales_are_checked_against_the_family():
    assert ModelConfig(num_classes=1, family="yolo11", scale="x").reg_max == 16
    with pytest.raises(ConfigError, match=r"family must be one of \['yolo11', 'yolo26', 'yolov8'\], received 'yolo9'"):
        ModelConfig(num_classes=1, family="yolo9")
    with pytest.raises(ConfigError, match="scale must be one of"):
        ModelConfig(num_classes=1, family="yolo11", scale="xl")


def test_metadata_is_written_once_and_read_back_and_old_models_load_as_yolov8(tmp_path):
    from tfyolo.metadata import find_model_metadata
    from tfyolo.models.detector_metadata import config_from_metadata, detector_config, detector_metadata, family_of
    from tfyolo.models.model_io import save_model_atomic
    from tfyolo.models.yolo_detector import build_yolo_detector

    config = ModelConfig(num_classes=2, family="yolo11", scale="n", input_size=64, padding="symmetric")
    metadata = detector_metadata(config, ["a", "b"], data="d.yaml")
    # Two models in one folder each keep their own metadata, inside the file.
    save_model_atomic(build_yolo_detector(config), tmp_path / "one.keras", metadata)
    other = ModelConfig(num_classes=3, input_size=64)
    save_model_atomic(build_yolo_detector(other), tmp_path / "two.keras", detector_metadata(other, "xyz"))
    assert detector_config(tmp_path / "one.keras") == config and detector_config(tmp_path / "two.keras") == other
    assert find_model_metadata(tmp_path / "one.keras")["names"] == ["a", "b"]
    assert not (tmp_path / "metadata.json").exists()
    # Saved before families: the trainer's "model" or the importer's "model_config", without a family.
    legacy_trained = {"model": {"num_classes": 3, "scale": "s", "activation": "silu", "input_size": 320, "reg_max": 16}}
    legacy_imported = {"model_config": dict(legacy_trained["model"], padding="symmetric")}
    for legacy in (legacy_trained, legacy_imported):
        assert config_from_metadata(legacy, "old").family == "yolov8" and family_of(legacy).name == "yolov8"
    with pytest.raises(Exception, match="no model metadata"):
        config_from_metadata({"names": ["x"]}, "bare.keras")


def test_the_shared_coco_model_saved_before_families_still_loads_as_yolov8():
    path = SHARED / "weights" / "ultralytics_yolov8n_coco_dequantized" / "yolov8n_coco.keras"
    if not path.is_file():
        pytest.skip("needs ../shared/weights/ultralytics_yolov8n_coco_dequantized (present in CI)")
    from tfyolo.models.detector_metadata import detector_config

    config = detector_config(path)
    assert (config.family, config.scale, config.num_classes, config.padding) == ("yolov8", "n", 80, "symmetric")


# === YOLO11 imported from a checkpoint the test writes itself ===


@pytest.fixture(scope="module")
def yolo11_import(tmp_path_factory):
    from tfyolo.importers.ultralytics_import import import_weights

    path = tmp_path_factory.mktemp("y11") / "best.pt"
    state = write_ultralytics_checkpoint(path, "yolo11", "n", num_classes=2)
    model, metadata = import_weights(path, input_size=64)
    return model, metadata, state


def test_a_yolo11_checkpoint_imports_completely_as_yolo11n(yolo11_import):
    model, metadata, state = yolo11_import
    assert (metadata["family"], metadata["scale"], metadata["num_classes"]) == ("yolo11", "n", 2)
    assert metadata["source"]["format"] == "ultralytics checkpoint" and len(metadata["source"]["sha256"]) == 64
    # Every learned tensor went somewhere (the import refuses otherwise): the count agrees with the file's.
    learned = sum(a.size for k, a in state.items() if not k.endswith(("num_batches_tracked", "dfl.conv.weight")))
    assert sum(int(np.prod(w.shape)) for w in model.weights) == learned


def test_qkv_channels_are_dealt_per_head_with_the_query_scale_in_its_batchnorm(yolo11_import):
    """Ultralytics views qkv as (heads, 2 key_dim + head_dim, tokens): head h's k is channels
    [h*(2kd+hd) + kd, h*(2kd+hd) + 2kd). YOLO11n's C2PSA: 128 channels, 2 heads, key_dim 32, head_dim 64."""
    model, _, state = yolo11_import
    prefix = "model.10.m.0.attn.qkv"
    weight = state[f"{prefix}.conv.weight"].astype(np.float32)  # (256, 128, 1, 1)
    width, key_dim = 2 * 32 + 64, 32
    k1 = model.get_layer("psa_m0_attn_h1_k_conv").get_weights()[0]
    np.testing.assert_array_equal(k1, weight[width + key_dim : width + 2 * key_dim].transpose(2, 3, 1, 0))
    v0 = model.get_layer("psa_m0_attn_h0_v_conv").get_weights()[0]
    np.testing.assert_array_equal(v0, weight[2 * key_dim : width].transpose(2, 3, 1, 0))
    gamma, beta, _, _ = model.get_layer("psa_m0_attn_h1_q_bn").get_weights()
    source_gamma = state[f"{prefix}.bn.weight"].astype(np.float32)[width : width + key_dim]
    np.testing.assert_allclose(gamma, source_gamma * 32**-0.5, rtol=1e-6)
    source_beta = state[f"{prefix}.bn.bias"].astype(np.float32)[width : width + key_dim]
    np.testing.assert_allclose(beta, source_beta * 32**-0.5, rtol=1e-6)


def test_depthwise_and_c3k2_kernels_land_where_ultralytics_keeps_them(yolo11_import):
    model, _, state = yolo11_import
    # DWConv weights are (channels, 1, 3, 3); a Keras depthwise kernel is (3, 3, channels, 1).
    depthwise = state["model.23.cv3.0.0.0.conv.weight"].astype(np.float32)
    np.testing.assert_array_equal(
        model.get_layer("head0_cls1_dw_conv").get_weights()[0], depthwise.transpose(2, 3, 0, 1)
    )
    # C3k2(c3k=False) at model.2: cv1 (32 channels) chunked in two, a Bottleneck of hidden 16 / 2 = 8.
    cv1 = state["model.2.cv1.conv.weight"].astype(np.float32)
    np.testing.assert_array_equal(model.get_layer("stage1_cv1b_conv").get_weights()[0], cv1[16:].transpose(2, 3, 1, 0))
    assert model.get_layer("stage1_m0_cv1_conv").get_weights()[0].shape == (3, 3, 16, 8)
    # model.6 is a C3k2(c3k=True): its C3k's second Bottleneck.
    inner = state["model.6.m.0.m.1.cv2.conv.weight"].astype(np.float32)
    np.testing.assert_array_equal(
        model.get_layer("stage3_m0_m1_cv2_conv").get_weights()[0], inner.transpose(2, 3, 1, 0)
    )


def test_a_conv_whose_activation_differs_from_the_keras_graph_is_refused(tmp_path, monkeypatch):
    """A YOLO26-style SPPF (cv1 without activation) in a YOLO11 file: refused, never computed with SiLU."""
    from tfyolo.importers import ultralytics_source
    from tfyolo.importers.ultralytics_import import import_weights

    path = tmp_path / "best.pt"
    write_ultralytics_checkpoint(path, "yolo11", "n")
    original = ultralytics_source._from_checkpoint

    def linear_sppf(source_path):
        source = original(source_path)
        return source.__class__(**{**source.__dict__, "activations": {**source.activations, "model.9.cv1": None}})

    monkeypatch.setattr(ultralytics_source, "_from_checkpoint", linear_sppf)
    with pytest.raises(Exception, match="model.9.cv1 applies no activation, the Keras layer sppf_cv1 silu"):
        import_weights(path, input_size=64)


def test_a_yolov8_checkpoint_the_test_writes_imports_too(tmp_path):
    from tfyolo.importers.ultralytics_import import import_weights

    path = tmp_path / "best.pt"
    write_ultralytics_checkpoint(path, "yolov8", "s", num_classes=3)
    model, metadata = import_weights(path, input_size=64)
    assert (metadata["family"], metadata["scale"]) == ("yolov8", "s")
    assert model.get_layer("head0_cls_pred").get_weights()[0].shape == (1, 1, 128, 3)
