import pytest

from tfyolo.errors import ConfigError
from tfyolo.models.model_config import ModelConfig


def test_defaults_are_edge_sized():
    config = ModelConfig(num_classes=3)
    assert (config.scale, config.activation, config.input_size, config.reg_max) == ("n", "silu", 320, 16)
    # 320 / 8, 16, 32 -> 40^2 + 20^2 + 10^2 anchors
    assert config.num_anchors == 1600 + 400 + 100


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"input_size": 100}, "multiple of 32"),
        ({"scale": "xl"}, "scale must be one of"),
        ({"activation": "gelu"}, "activation must be one of"),
        ({"num_classes": 0}, "positive integer"),
    ],
)
def test_invalid_values_say_what_was_received(changes, fragment):
    with pytest.raises(ConfigError, match=fragment):
        ModelConfig(**{"num_classes": 2, **changes})


def test_input_size_error_suggests_valid_sizes():
    with pytest.raises(ConfigError, match="96 and 128"):
        ModelConfig(num_classes=2, input_size=100)


def test_unknown_keys_are_errors():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['num_clases'\]"):
        ModelConfig.from_dict({"num_clases": 2})


def test_round_trip():
    config = ModelConfig(num_classes=5, scale="s", activation="relu", input_size=256)
    assert ModelConfig.from_dict(config.to_dict()) == config
