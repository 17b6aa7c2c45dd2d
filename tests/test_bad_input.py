"""Bad input and faults: every case ends in one clear line naming the file or field, before any long work."""

import json
import os
import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from tfyolo.cli.evaluate import main as evaluate_main
from tfyolo.cli.main import cli
from tfyolo.errors import ConfigError, DataError


def one_clear_line(result, *fragments):
    """A failed command: exit code 1 (2 for usage errors), no traceback, one 'Error:' line holding `fragments`."""
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


def small_dataset(root, images=4):
    """images/{train,val} with one labelled box per image, and data.yaml."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for index in range(images):
            cv2.imwrite(str(root / "images" / split / f"{index}.png"), rng.integers(0, 255, (32, 32, 3), np.uint8))
            (root / "labels" / split / f"{index}.txt").write_text("0 0.5 0.5 0.4 0.4\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: ['thing', 'other']\n")
    return root / "data.yaml"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


# === Images ===


@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_an_unreadable_image_is_named_before_any_training(tmp_path, split, damage):
    from tfyolo.training.train_config import TrainConfig
    from tfyolo.training.trainer import Trainer

    data = small_dataset(tmp_path / "d")
    bad = tmp_path / "d" / "images" / split / "1.png"
    bad.write_bytes(b"" if damage == "empty" else bad.read_bytes()[:40])
    checked = CliRunner().invoke(cli, ["data", "check", str(data)])
    assert checked.exit_code == 1 and f"bad image: {bad}" in checked.output
    config = TrainConfig(data=str(data), out=str(tmp_path / "run"), imgsz=64, epochs=1, batch=2)
    with pytest.raises(DataError, match=f"1 image\\(s\\) cannot be used: {bad}"):
        Trainer(config)
    assert not (tmp_path / "run").exists()  # refused before the run folder was even made
    skipping = Trainer(TrainConfig(**dict(config.to_dict(), skip_bad_images=True)))
    assert len(getattr(skipping, f"{split}_data")) == 3


def test_decoded_images_are_remembered_until_they_change(tmp_path, monkeypatch):
    from tfyolo.data import image_check

    data = small_dataset(tmp_path / "d")
    paths = sorted((tmp_path / "d" / "images" / "train").iterdir())
    assert image_check.find_bad_images(paths) == []
    decoded = []
    monkeypatch.setattr(image_check, "decode_problem", lambda path: decoded.append(path))
    assert image_check.find_bad_images(paths) == [] and decoded == []  # all cached
    paths[0].write_bytes(paths[0].read_bytes() + b"\0")  # changed size: checked again
    image_check.find_bad_images(paths)
    assert decoded == [paths[0]]
    assert data.is_file()


# === Labels and data.yaml ===


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("nan 0.5 0.5 0.1 0.1", "must be finite numbers"),
        ("inf 0.5 0.5 0.1 0.1", "must be finite numbers"),
        ("0 nan 0.5 0.1 0.1", "must be finite numbers"),
        ("0 0.5 0.5 inf 0.1", "must be finite numbers"),
        ("5 0.5 0.5 0.1 0.1", "class id 5 is not an integer in 0..1"),
        ("0 0.5 0.5 0.1", "expected 5 fields"),
    ],
)
def test_bad_label_values_name_file_and_line(tmp_path, line, fragment):
    data = small_dataset(tmp_path / "d")
    label = tmp_path / "d" / "labels" / "train" / "2.txt"
    label.write_text("0 0.5 0.5 0.2 0.2\n" + line + "\n")
    one_clear_line(CliRunner().invoke(cli, ["data", "check", str(data)]), f"{label}:2:", fragment)


def test_a_label_file_that_is_not_utf8(tmp_path):
    data = small_dataset(tmp_path / "d")
    label = tmp_path / "d" / "labels" / "train" / "0.txt"
    label.write_bytes(b"0 0.5 0.5 0.2 0.2\n\xff\xfe\x00 junk\n")
    one_clear_line(CliRunner().invoke(cli, ["data", "check", str(data)]), str(label), "not UTF-8")


def test_a_split_without_any_label_file_is_refused_but_background_images_are_fine(tmp_path):
    data = small_dataset(tmp_path / "d")
    (tmp_path / "d" / "labels" / "val" / "0.txt").unlink()  # one background image: allowed
    assert CliRunner().invoke(cli, ["data", "check", str(data)]).exit_code == 0
    shutil.rmtree(tmp_path / "d" / "labels")
    one_clear_line(CliRunner().invoke(cli, ["data", "check", str(data)]), "none of its 4 images has a label file")


@pytest.mark.parametrize(
    "yaml_text, fragment",
    [
        ("train: images/train\nval: images/val\nnc: '2'\nnames: [a, b]\n", "'nc' must be an integer, received str"),
        ("train: 5\nval: images/val\nnames: [a, b]\n", "'train' must be a folder or .txt list path"),
        ("train: images/train\nval: [images/val, 3]\nnames: [a, b]\n", "'val' must be a folder"),
        ("train: images/train\nval: images/val\nnames: [a, b]\nepochs: 3\n", "unknown key(s) ['epochs']"),
        ("train: [images/train\n", "not valid YAML"),
    ],
)
def test_data_yaml_type_errors_name_the_key(tmp_path, yaml_text, fragment):
    small_dataset(tmp_path / "d")
    (tmp_path / "d" / "data.yaml").write_text(yaml_text)
    one_clear_line(CliRunner().invoke(cli, ["data", "check", str(tmp_path / "d" / "data.yaml")]), fragment)


def test_an_unparsable_data_yaml_is_one_line_naming_the_file(tmp_path):
    from tfyolo.data.data_config import load_data_config

    data = tmp_path / "broken.yaml"
    data.write_text("train: [images/train\nval: images/val\n")
    with pytest.raises(DataError) as refused:
        load_data_config(data)
    assert "\n" not in str(refused.value) and str(data) in str(refused.value), str(refused.value)
    assert "not valid YAML" in str(refused.value)
    result = CliRunner().invoke(cli, ["data", "check", str(data)])
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0, result.output


# === Recipes ===


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ("per_channel: 'no'", "'per_channel' must be true or false, received str 'no'"),
        ("calibration_images: many", "'calibration_images' must be a positive integer, received str 'many'"),
        ("calibration_images: 2.5", "'calibration_images' must be a positive integer, received float 2.5"),
        ("calibration_images: 0", "'calibration_images' must be a positive integer"),
        ("io_type: int4", "'io_type' must be one of"),
        ("keep_float: conv1", "'keep_float' must be a list"),
        ("mode: [int8", "not valid YAML"),
    ],
)
def test_recipe_fields_are_typed(tmp_path, extra, fragment):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("mode: int8\n" + extra + "\n")
    (tmp_path / "model.keras").write_bytes(b"never opened: the recipe is refused first")
    result = CliRunner().invoke(
        cli, ["convert", "--model", str(tmp_path / "model.keras"), "--recipe", str(recipe), "--out", str(tmp_path)]
    )
    one_clear_line(result, str(recipe), fragment)


# === Runs ===


def test_a_copied_run_folder_resumes_as_itself(tmp_path):
    from tfyolo.training.train_config import TrainConfig
    from tfyolo.training.trainer import resume_config

    original = tmp_path / "A"
    original.mkdir()
    config = TrainConfig(data="data.yaml", out=str(original), imgsz=64, epochs=2, batch=2)
    (original / "train_args.json").write_text(json.dumps(config.to_dict()))
    shutil.copytree(original, tmp_path / "B")
    assert resume_config(tmp_path / "B").out == str(tmp_path / "B")


def test_a_damaged_train_args_file_is_one_line(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "train_args.json").write_text('{"data": "x.yaml", "out": ')
    result = CliRunner().invoke(cli, ["train", "--resume", "--out", str(tmp_path / "run")])
    one_clear_line(result, "train_args.json: damaged")


@pytest.mark.large
def test_a_truncated_latest_checkpoint_falls_back_to_the_one_before(tmp_path):
    from tests.square_detector import write_squares_dataset
    from tfyolo.training.train_config import TrainConfig
    from tfyolo.training.trainer import SilentReporter, Trainer, resume_config

    data = write_squares_dataset(tmp_path / "data")
    config = TrainConfig(data=str(data), out=str(tmp_path / "run"), imgsz=64, epochs=2, batch=4, val_interval=0)
    Trainer(config).fit()
    (latest,) = (tmp_path / "run" / "checkpoints").glob("ckpt-2.data-*")
    latest.write_bytes(latest.read_bytes()[:100])

    class Messages(SilentReporter):
        def __init__(self):
            self.lines = []

        def message(self, text):
            self.lines.append(text)

    reporter = Messages()
    history = Trainer(resume_config(tmp_path / "run"), reporter=reporter).fit()
    assert any("ckpt-2: damaged" in line for line in reporter.lines), reporter.lines
    assert any("Resuming from" in line and "ckpt-1 (epoch 1 done)" in line for line in reporter.lines)
    assert [row["epoch"] for row in history] == [1, 2]


# === Bundles ===


@pytest.fixture(scope="module")
def bundle(squares, tmp_path_factory):
    from tfyolo.bundle import make_bundle
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.recipe import Recipe

    model, data = squares
    folder = tmp_path_factory.mktemp("bundle_source")
    (folder / "squares_fp32.tflite").write_bytes(convert(load_keras_model(model), Recipe(name="fp32", mode="fp32")))
    files = make_bundle(folder / "squares_fp32.tflite", [next((data.parent / "images" / "val").iterdir())])
    return files


def _written(files, folder):
    from tfyolo.bundle import write_bundle

    write_bundle(folder, files)
    return folder


@pytest.mark.parametrize(
    "tamper, fragment",
    [
        (lambda f: (f / "manifest.json.sha256").write_text(""), "does not match manifest.json.sha256"),
        (lambda f: (f / "extra.tflite").write_bytes(b"TFL3"), "extra.tflite: not part of the bundle"),
        (lambda f: (f / "helper.py").write_text("print()"), "helper.py: not part of the bundle"),
        (lambda f: (f / "labels.txt").unlink(), "labels.txt: listed in the manifest but missing"),
    ],
)
def test_bundle_verify_fails_cleanly(bundle, tmp_path, tamper, fragment):
    from tfyolo.bundle import verify_bundle

    folder = _written(bundle, tmp_path / "bundle")
    assert verify_bundle(folder) == []
    tamper(folder)
    problems = verify_bundle(folder)
    assert any(fragment in problem for problem in problems), problems
    one_clear_line(CliRunner().invoke(cli, ["bundle", str(folder), "--verify"]), "problem")


def test_a_renamed_manifest_key_fails_verify_even_with_a_matching_digest(bundle, tmp_path):
    import hashlib

    from tfyolo.bundle import verify_bundle

    folder = _written(bundle, tmp_path / "bundle")
    text = (folder / "manifest.json").read_text().replace('"sha256"', '"sha257"')
    (folder / "manifest.json").write_text(text)
    (folder / "manifest.json.sha256").write_text(f"{hashlib.sha256(text.encode()).hexdigest()}  manifest.json\n")
    problems = verify_bundle(folder)
    assert len(problems) == 1 and "missing or malformed key(s) ['sha256']" in problems[0]


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["sha256"].__setitem__("../../etc/hostname", "0" * 64),
        lambda m: m["sha256"].__setitem__("/etc/hostname", "0" * 64),
        lambda m: m.__setitem__("model", "../outside.tflite"),
        lambda m: m["golden"][0].__setitem__("input", "../outside.npy"),
    ],
    ids=["listed-dotdot", "listed-absolute", "model", "golden-input"],
)
def test_a_manifest_naming_a_file_outside_the_bundle_is_refused_before_it_is_read(bundle, tmp_path, edit):
    """Issue 34's trial: `bundle --verify` hashed a file a manifest named as `../../etc/hostname`, which tells whoever
    wrote the manifest whether a server path exists. Every name a manifest gives must be a file of the bundle."""
    import hashlib

    from tfyolo.bundle import verify_bundle

    folder = _written(bundle, tmp_path / "bundle")
    manifest = json.loads((folder / "manifest.json").read_text())
    (tmp_path / "outside.tflite").write_bytes((folder / manifest["model"]).read_bytes())
    edit(manifest)
    text = json.dumps(manifest, indent=2) + "\n"
    (folder / "manifest.json").write_text(text)
    (folder / "manifest.json.sha256").write_text(f"{hashlib.sha256(text.encode()).hexdigest()}  manifest.json\n")
    problems = verify_bundle(folder)
    assert len(problems) == 1 and "not files of this bundle; nothing outside it is read" in problems[0], problems


def test_a_bundle_is_replaced_whole_and_never_over_another_folder(bundle, tmp_path):
    from tfyolo.bundle import verify_bundle
    from tfyolo.errors import ModelError

    folder = _written(bundle, tmp_path / "bundle")
    (folder / "stale.txt").write_text("left from an earlier bundle")
    _written(bundle, folder)
    assert verify_bundle(folder) == [] and not (folder / "stale.txt").exists()
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"...")
    with pytest.raises(ModelError, match="exists and is not a bundle"):
        _written(bundle, tmp_path / "photos")
    assert (tmp_path / "photos" / "cat.jpg").is_file()


# === Output folders ===


def test_unwritable_outputs_are_refused_before_the_work(squares, tmp_path):
    model, data = squares
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "out"  # cannot be created, whoever runs the test (root ignores permission bits)
    runner = CliRunner()
    one_clear_line(runner.invoke(cli, ["convert", "--model", str(model), "--out", str(out)]), str(out), "cannot write")
    one_clear_line(runner.invoke(evaluate_main, [str(model), "--json", str(out / "e.json")]), str(out), "cannot write")
    one_clear_line(
        runner.invoke(cli, ["train", "--data", str(data), "--imgsz", "64", "--out", str(out)]), "cannot write"
    )
    one_clear_line(runner.invoke(cli, ["bundle", str(model), "--out", str(out / "b")]), "cannot write")


def test_two_converts_into_one_folder_keep_each_others_rows(tmp_path):
    from tfyolo.jobs.conversion import merge_reports

    first = {"model": "m.keras", "rows": [{"recipe": "float"}, {"recipe": "fp32", "latency_ms_p50": 3.0}]}
    (tmp_path / "report.json").write_text(json.dumps(first))
    second = {"model": "m.keras", "rows": [{"recipe": "float"}, {"recipe": "int8", "latency_ms_p50": 1.0}]}
    merged = merge_reports(tmp_path / "report.json", second)
    assert [row["recipe"] for row in merged["rows"]] == ["float", "int8", "fp32"]
    assert merged["rows"][2]["earlier_run"] and not merged["rows"][1].get("earlier_run")
    other_model = {"model": "other.keras", "rows": [{"recipe": "int8"}]}
    assert merge_reports(tmp_path / "report.json", other_model) == other_model


# === Every command ===


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "data.yaml").write_text("train: 5\n")
    quiet = CliRunner().invoke(cli, ["data", "check", str(tmp_path / "data.yaml")])
    assert quiet.exit_code == 1 and quiet.exception is not None and "Traceback" not in quiet.output
    loud = CliRunner().invoke(cli, ["--debug", "data", "check", str(tmp_path / "data.yaml")])
    os.environ.pop("TFYOLO_DEBUG", None)
    assert isinstance(loud.exception, DataError)


def test_tensorflows_native_start_up_lines_are_dropped():
    from tfyolo.cli.quiet import _forward

    noise = (
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        b"I0000 00:00:1795985554.237860   31094 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n"
        b"E0000 00:00:1795985554.855657   31094 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n"
    )
    wanted = b"evaluating:  50%|#####     | 4/8\revaluating: 100%|##########| 8/8\nError: data.yaml: missing key\n"
    read_end, write_end = os.pipe()
    out_read, out_write = os.pipe()
    os.write(write_end, noise + wanted + noise)
    os.close(write_end)
    _forward(read_end, out_write)
    os.close(out_write)
    assert os.read(out_read, 1 << 16) == wanted


def test_unexpected_errors_are_one_line_too():
    from tfyolo.errors import one_line

    assert one_line(ConfigError("x.yaml: bad")) == "x.yaml: bad"
    assert one_line(PermissionError(13, "Permission denied", "/out/report.json")) == (
        "/out/report.json: Permission denied."
    )
    assert "rerun with --debug" in one_line(IndexError("list index out of range"))


def test_cases_that_already_worked_still_end_in_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "junk.tflite").write_bytes(b"\0" * 64)
    (tmp_path / "m.keras").write_bytes(b"not a zip")
    runner = CliRunner()
    one_clear_line(runner.invoke(evaluate_main, [str(tmp_path / "absent.tflite")]), "absent.tflite", "not found")
    one_clear_line(runner.invoke(evaluate_main, [str(tmp_path / "junk.tflite")]), "not a valid TFLite model")
    one_clear_line(runner.invoke(evaluate_main, [str(tmp_path / "notes.txt")]), "unknown model type")
    one_clear_line(
        runner.invoke(cli, ["convert", "--model", str(tmp_path / "m.keras"), "--recipe", "int9", "--out", "x"]),
        "unknown recipe 'int9'",
    )
    data = small_dataset(tmp_path / "d")
    one_clear_line(
        runner.invoke(cli, ["train", "--data", str(data), "--imgsz", "100", "--out", str(tmp_path / "r")]),
        "imgsz",
        "multiple of 32",
    )
