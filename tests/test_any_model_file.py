"""Any model file in, everywhere: an Ultralytics .pt handed to `tfyolo convert`, `tfyolo-eval` or the library's
job is imported on the fly through the importer `tfyolo import` uses, cached beside the output and reused."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tests.ultralytics_layouts import write_ultralytics_checkpoint
from tfyolo.cli.evaluate import main as evaluate_main
from tfyolo.cli.main import cli
from tfyolo.errors import ConfigError, DataError
from tfyolo.importers.import_cache import imported_model
from tfyolo.importers.ultralytics_import import import_weights
from tfyolo.jobs.spec import JobSpec
from tfyolo.metadata import find_model_metadata, resolve_data


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A YOLOv8n checkpoint of 2 classes at 64 px (random weights), in a folder named like a run's."""
    folder = tmp_path_factory.mktemp("runs") / "my_detector"
    folder.mkdir()
    path = folder / "best.pt"
    write_ultralytics_checkpoint(path, "yolov8", num_classes=2, imgsz=64)
    return path


# 55 s (two conversions); the fast suite keeps the .pt on the command line (`test_eval_takes_a_pt`, the same model
# resolution every command uses) and the import cache (`test_the_cached_import_equals_a_fresh_import`).
@pytest.mark.large
def test_convert_takes_a_pt_and_imports_it_once(checkpoint, tiny_synthetic, tmp_path):
    out = tmp_path / "convert"
    arguments = ["convert", "--model", str(checkpoint), "--recipe", "fp32", "--data", str(tiny_synthetic)]
    arguments += ["--out", str(out)]
    first = CliRunner().invoke(cli, arguments)
    assert first.exit_code == 0, first.output
    (cached,) = (out / "imported").glob("*.keras")
    metadata = find_model_metadata(cached)
    assert metadata["source"]["format"] == "ultralytics checkpoint"
    assert (metadata["family"], metadata["scale"], metadata["imgsz"]) == ("yolov8", "n", 64)
    # The artifact is named after the run's folder, as for a best.keras, not after the cache's file name.
    assert (out / "my_detector_fp32.tflite").is_file()
    report = json.loads((out / "report.json").read_text())
    assert [row["recipe"] for row in report["rows"]] == ["float", "fp32"]
    # The fp32 artifact computes what the import computes: the same float model, the same images.
    assert report["rows"][1]["output_errors"]["box_distribution"]["max_abs_error"] < 1e-3
    stamp = cached.stat().st_mtime_ns
    second = CliRunner().invoke(cli, [*arguments, "--no-eval"])
    assert second.exit_code == 0, second.output
    assert "imported before" in second.output
    assert cached.stat().st_mtime_ns == stamp


def test_the_cached_import_equals_a_fresh_import(checkpoint, tmp_path):
    cached, imported_now = imported_model(checkpoint, tmp_path)
    assert imported_now
    again, imported_again = imported_model(checkpoint, tmp_path)
    assert (again, imported_again) == (cached, False)
    from tfyolo.models.model_io import load_keras_model

    fresh, _ = import_weights(checkpoint)
    loaded = load_keras_model(cached)
    image = np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32)
    for expected, actual in zip(fresh(image), loaded(image)):
        np.testing.assert_array_equal(np.asarray(expected), np.asarray(actual))


def test_another_imgsz_is_another_import(checkpoint, tmp_path):
    at_64, _ = imported_model(checkpoint, tmp_path)
    at_96, imported_now = imported_model(checkpoint, tmp_path, imgsz=96)
    assert imported_now and at_96 != at_64
    assert find_model_metadata(at_96)["imgsz"] == 96


def test_a_changed_file_is_imported_again(checkpoint, tmp_path):
    copy = tmp_path / "best.pt"
    write_ultralytics_checkpoint(copy, "yolov8", num_classes=2, imgsz=64, seed=1)
    first, _ = imported_model(copy, tmp_path / "cache")
    write_ultralytics_checkpoint(copy, "yolov8", num_classes=2, imgsz=64, seed=2)
    second, imported_now = imported_model(copy, tmp_path / "cache")
    assert imported_now and second != first


def test_eval_takes_a_pt(checkpoint, tiny_synthetic, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = CliRunner().invoke(
        evaluate_main, [str(checkpoint), "--data", str(tiny_synthetic), "--json", str(tmp_path / "e.json")]
    )
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "cache" / "tfyolo" / "imported").glob("best_*.keras"))
    assert 0.0 <= json.loads((tmp_path / "e.json").read_text())["map50_95"] <= 1.0


def test_an_imported_model_without_data_asks_for_it(checkpoint, tmp_path):
    cached, _ = imported_model(checkpoint, tmp_path)
    with pytest.raises(DataError, match="pass --data"):
        resolve_data(None, cached)
    # The command names the user's file, and the import stays cached for the run with --data.
    result = CliRunner().invoke(cli, ["convert", "--model", str(checkpoint), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and f"{checkpoint}: an Ultralytics file names no dataset" in result.output
    assert "Traceback" not in result.output and list((tmp_path / "o" / "imported").glob("best_*.keras"))


@pytest.mark.parametrize(
    "values, field",
    [
        ({"model": "m.keras", "imgsz": 320}, "imgsz and head"),
        ({"model": "m.pt", "imgsz": 100}, "imgsz"),
        ({"model": "m.pt", "imgsz": True}, "imgsz"),
        ({"model": "m.onnx", "head": "both"}, "head"),
        ({"model": "m.tflite", "kind": "evaluate", "head": "one2one"}, "imgsz and head"),
    ],
)
def test_import_options_are_checked_when_the_spec_is_built(values, field):
    with pytest.raises(ConfigError, match=f"^{field}:"):
        JobSpec.from_dict(values)
