"""Clustering and pruning: what the int8 kernels hold is read back from the flatbuffer and checked against what
was asked for."""

import json

import numpy as np
import pytest


def test_kernel_stats_reads_distinct_values_per_channel_and_zeros():
    """A 3x3 conv whose output channels each use 3 values (one of them 0, on half of the taps): per-channel int8
    quantization maps equal floats to equal integers, so the flatbuffer must show 3 values per channel and at
    least half zeros (small values may round to 0 as well)."""
    from tfyolo.compat import keras, tf
    from tfyolo.quantization.weight_stats import kernel_stats

    inputs = keras.Input((8, 8, 3), batch_size=1)
    outputs = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    kernel = np.zeros((3, 3, 3, 4), np.float32)
    for channel in range(4):
        values = rng.choice([-1.0, 1.0], 2) * rng.uniform(0.5, 1.0, 2) * (channel + 1)
        taps = rng.choice(values, size=(3, 3, 3))
        taps[rng.random((3, 3, 3)) < 0.5] = 0.0
        kernel[..., channel] = taps
    model.layers[1].set_weights([kernel, np.zeros(4, np.float32)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([rng.random((1, 8, 8, 3), dtype=np.float32)] for _ in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    stats = kernel_stats(converter.convert())
    assert stats["kernels"] == 1 and stats["max_values_per_channel"] == 3
    assert stats["sparsity"] == pytest.approx(float(np.mean(kernel == 0)))


def test_one_grid_per_layer_puts_every_channel_on_the_same_int8_values():
    """A 4-value palette whose outermost centroids differ in magnitude (-0.6, +1.0): channels holding +1.0 map it to
    round(127 * c / 1.0), channels whose largest is -0.6 to round(127 * c / 0.6), so PTQ int8 (read back from the
    flatbuffer) holds more than 4 values in the layer. With the extremes at one magnitude (-1.0, +1.0), every channel
    holding either maps it onto one grid: exactly 4 values in the layer, 127 * (-1, -0.2, 0.3, 1)."""
    from tfyolo.compat import keras, tf
    from tfyolo.tflite_runtime import read_graph
    from tfyolo.training.compression import one_grid_per_layer

    inputs = keras.Input((8, 8, 2), batch_size=1)
    outputs = keras.layers.Conv2D(4, 3, use_bias=False, name="clustered")(inputs)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    kernel = rng.choice([-0.2, 0.3], size=(3, 3, 2, 4)).astype(np.float32)
    kernel[0, 0, 0, :2] = 1.0
    kernel[0, 0, 0, 2:] = -0.6
    model.get_layer("clustered").set_weights([kernel])

    def layer_values():
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.random((1, 8, 8, 2), dtype=np.float32)] for _ in range(4))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        interpreter, ops, details = read_graph(converter.convert())
        (conv,) = [op for op in ops if op["op_name"] == "CONV_2D"]
        return set(np.unique(interpreter.get_tensor(details[conv["inputs"][1]]["index"])).tolist())

    assert len(layer_values()) > 4
    one_grid_per_layer(model)
    assert np.unique(model.get_layer("clustered").kernel.numpy()).tolist() == pytest.approx([-1.0, -0.2, 0.3, 1.0])
    assert layer_values() == {-127, round(-0.2 * 127), round(0.3 * 127), 127}


@pytest.mark.large
@pytest.mark.parametrize("method", ["cluster", "prune"])
def test_compression_survives_into_the_int8_kernels(method, tiny_float_run, tiny_synthetic, tmp_path):
    from tfyolo.compat import keras
    from tfyolo.data.calibration_images import load_calibration_images
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.qat.qat_io import load_any_detector
    from tfyolo.qat.qat_training import trainer_for
    from tfyolo.quantization.isolated import convert_isolated
    from tfyolo.quantization.recipes_dir import resolve_recipe
    from tfyolo.quantization.weight_stats import kernel_stats
    from tfyolo.training.train_config import TrainConfig
    from tfyolo.training.trainer import Trainer

    common = dict(
        data=str(tiny_synthetic),
        imgsz=64,
        batch=4,
        optimizer="adamw",
        lr0=1e-4,
        warmup_epochs=0.0,
        mosaic=0.0,
        close_mosaic=0,
        seed=1,
    )
    Trainer(
        TrainConfig(
            out=str(tmp_path / "compressed"),
            epochs=2,
            ema=False,
            init_weights=str(tiny_float_run),
            compress=method,
            clusters=8,
            sparsity=0.5,
            **common,
        )
    ).fit()
    compressed = load_keras_model(tmp_path / "compressed" / "best.keras")
    kernels = [
        layer.kernel.numpy()
        for layer in compressed.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.trainable
    ]
    if method == "cluster":
        assert max(len(np.unique(kernel)) for kernel in kernels) <= 8
        # PTQ: per-channel int8 of at most 8 floats per channel (BatchNorm folding scales whole channels).
        images, _ = load_calibration_images(tiny_synthetic, 64, 16, 0, [], False)
        stats = kernel_stats(convert_isolated(tmp_path / "compressed" / "best.keras", resolve_recipe("int8"), images))
        assert stats["max_values_per_channel"] <= 8
    else:
        zeros = sum(int(np.count_nonzero(kernel == 0)) for kernel in kernels)
        assert zeros / sum(kernel.size for kernel in kernels) >= 0.5 - 0.02
    trainer_for(
        TrainConfig(
            out=str(tmp_path / "qat"),
            epochs=1,
            qat_from=str(tmp_path / "compressed" / "best.keras"),
            qat_preserve=method,
            qat_calibration_images=8,
            ema=method != "cluster",
            **common,
        )
    ).fit()
    qat_model = tmp_path / "qat" / "best.h5"
    loaded = load_any_detector(qat_model)
    if method == "cluster":
        # Centroids held: each layer keeps one palette of at most 8 values (tfmot's per-channel copies would drift).
        kernels = [
            next(v for v in layer.weights if v.name.endswith("/kernel:0")).numpy()
            for layer in loaded.layers
            if any("cluster_centroids" in v.name for v in layer.weights)
        ]
        assert kernels and max(len(np.unique(kernel)) for kernel in kernels) <= 8
    # Cluster-preserving QAT reloads through its float model (tfmot does not serialize its quantizer).
    stats = kernel_stats(convert_isolated(qat_model, resolve_recipe("int8")))
    if method == "cluster":
        assert stats["max_values_per_channel"] <= 8
    else:
        assert stats["sparsity"] >= 0.5 - 0.02


def test_pruning_shares_follow_one_threshold_on_the_folded_weights():
    """Global magnitude pruning: the per-layer shares prune the smallest half of all weights as the converter folds
    them (kernel x gamma / sqrt(variance + eps)). The oracle sorts every folded weight in one list; a layer whose
    share would pass MAX_LAYER_SPARSITY is held there and the rest of the budget moves to the other layer."""
    from tfyolo.compat import keras
    from tfyolo.training.compression import MAX_LAYER_SPARSITY, layer_sparsities

    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="wide")(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-3, name="wide_bn")(x)
    outputs = keras.layers.Conv2D(3, 1, name="narrow")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    wide = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    gamma = np.array([0.1, 0.5, 2.0, 4.0], np.float32)
    variance = np.array([1.0, 0.25, 4.0, 0.01], np.float32)
    model.get_layer("wide").set_weights([wide])
    model.get_layer("wide_bn").set_weights([gamma, np.zeros(4), np.zeros(4), variance])
    for scale, expected_cap in ((1.0, False), (1e-3, True)):
        narrow = (rng.normal(size=(1, 1, 4, 3)) * scale).astype(np.float32)
        model.get_layer("narrow").set_weights([narrow, np.zeros(3, np.float32)])
        folded = {"wide": np.abs(wide) * gamma / np.sqrt(variance + 1e-3), "narrow": np.abs(narrow)}
        total = sum(values.size for values in folded.values())
        shares = layer_sparsities(model, 0.5)
        if expected_cap:
            assert shares["narrow"] == MAX_LAYER_SPARSITY
            kept = int(round(MAX_LAYER_SPARSITY * folded["narrow"].size))
            expected_wide = (total // 2 - kept) / folded["wide"].size
            assert abs(shares["wide"] - expected_wide) <= 1 / folded["wide"].size
            continue
        threshold = np.sort(np.concatenate([values.ravel() for values in folded.values()]))[total // 2 - 1]
        for name, values in folded.items():
            assert shares[name] == pytest.approx(float(np.mean(values <= threshold)))
        assert sum(shares[name] * folded[name].size for name in folded) == pytest.approx(total // 2)


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"qat_from": "float.keras", "qat_preserve": "cluster"}, "cluster-preserving QAT trains without EMA"),
        ({"compress": "prune", "init_weights": "float.keras"}, "compress trains without EMA"),
        ({"qat_preserve": "prune"}, "qat_preserve belongs to a QAT run"),
        ({"qat_from": "float.keras", "qat_preserve": "quantize"}, "qat_preserve must be one of ('prune', 'cluster')"),
    ],
)
def test_compression_and_preserving_qat_settings_are_checked_once(changes, fragment):
    from tfyolo.errors import ConfigError
    from tfyolo.training.train_config import TrainConfig

    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(data="data.yaml", out="run", **changes)
    # The same settings without EMA are accepted where EMA was the only objection.
    if "EMA" in fragment:
        TrainConfig(data="data.yaml", out="run", ema=False, **changes)


def test_an_artifact_that_lost_its_clusters_or_zeros_is_refused():
    from tfyolo.quantization.weight_stats import broken_promise, promised_structure

    cluster = {"method": "cluster", "clusters": 16, "sparsity": 0.5}
    prune = {"method": "prune", "clusters": 16, "sparsity": 0.5}
    assert broken_promise({"max_values_per_channel": 16, "sparsity": 0.0}, cluster) is None
    assert "up to 17 values in a channel, more than the 16 clusters" in broken_promise(
        {"max_values_per_channel": 17, "sparsity": 0.0}, cluster
    )
    assert broken_promise({"max_values_per_channel": 255, "sparsity": 0.49}, prune) is None
    assert "47.0% zeros, less than the 50%" in broken_promise({"max_values_per_channel": 255, "sparsity": 0.47}, prune)
    assert broken_promise({"max_values_per_channel": 255, "sparsity": 0.0}, None) is None
    # A sparsity-preserving QAT model carries the promise of the float model it came from.
    float_metadata = {"compress": prune}
    qat_metadata = {"qat_preserve": "prune", "qat_from": "float.keras"}
    assert promised_structure(qat_metadata, {"float.keras": float_metadata}.get) == prune
    assert promised_structure({"qat_from": "float.keras"}, {"float.keras": float_metadata}.get) is None


@pytest.mark.large
def test_a_prune_int8_recipe_runs_its_three_stages_in_one_convert(tiny_float_run, tiny_synthetic, tmp_path):
    """`convert --recipe prune_int8`: fine-tune to 50% zeros, sparsity-preserving QAT, int8 from the learned ranges;
    the artifact's int8 kernels keep the zeros (the conversion refuses it otherwise)."""
    from click.testing import CliRunner

    from tfyolo.cli.main import cli

    recipe = tmp_path / "prune_int8.yaml"
    recipe.write_text(
        "name: prune_int8\nmode: int8\ncompress: prune\nsparsity: 0.5\ncompress_epochs: 1\nqat_epochs: 1\n"
    )
    arguments = ["convert", "--model", str(tiny_float_run), "--recipe", str(recipe), "--data", str(tiny_synthetic)]
    result = CliRunner().invoke(cli, arguments + ["--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    (row,) = [r for r in json.loads((tmp_path / "out" / "report.json").read_text())["rows"] if r["recipe"] != "float"]
    assert row["full_integer"] and row["error"] is None
    assert row["kernels"]["sparsity"] >= 0.5 - 0.02
    assert (tmp_path / "out" / "prune_int8_stages" / "qat" / "last.h5").is_file()
