"""The entry points end to end on the tiny model: tfyolo-eval, tfyolo convert, tfyolo bundle, tfyolo data."""

import json

import pytest
from click.testing import CliRunner

from tfyolo.cli.evaluate import main as evaluate_main
from tfyolo.cli.main import cli

REPORT_KEYS = {
    "model",
    "data",
    "split",
    "num_images",
    "map50_95",
    "map50",
    "map75",
    "per_class",
    "reference",
    "delta_map50_95",
}


def artifact(folder, recipe):
    """The converted file of `recipe` (named after the model's folder, which pytest numbers)."""
    (path,) = folder.glob(f"*_{recipe}.tflite")
    return path


@pytest.fixture(scope="module")
def converted(tiny_float_run, tiny_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("convert")
    result = CliRunner().invoke(
        cli,
        [
            "convert",
            "--model",
            str(tiny_float_run),
            "--recipe",
            "fp32",
            "--recipe",
            "int8",
            "--calibration",
            str(tiny_synthetic),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def test_convert_report_rows(converted):
    report = json.loads((converted / "report.json").read_text())
    rows = {row["recipe"]: row for row in report["rows"]}
    assert list(rows) == ["float", "fp32", "int8"]
    for row in rows.values():
        assert {
            "recipe",
            "path",
            "size_bytes",
            "map50_95",
            "map50",
            "delta_map50_95",
            "full_integer",
            "latency_ms_p50",
            "error",
        } <= set(row)
    assert rows["fp32"]["delta_map50_95"] == pytest.approx(0.0, abs=0.05)
    assert rows["int8"]["full_integer"] and rows["int8"]["error"] is None
    assert artifact(converted, "int8").is_file() and "| int8 |" in (converted / "report.md").read_text()
    assert report["calibration"]["images_used"] == 19


def test_eval_json_report_and_gate(converted, tiny_float_run, tmp_path):
    runner = CliRunner()
    json_path, report_dir = tmp_path / "eval.json", tmp_path / "report"
    result = runner.invoke(
        evaluate_main,
        [
            str(artifact(converted, "fp32")),
            "--reference",
            str(tiny_float_run),
            "--json",
            str(json_path),
            "--report",
            str(report_dir),
            "--max-drop",
            "1.0",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(json_path.read_text())
    assert REPORT_KEYS <= set(report) and report["split"] == "val" and report["num_images"] == 5
    assert 0.0 <= report["map50_95"] <= 1.0 and report["reference"]["map50_95"] == pytest.approx(report["map50_95"])
    assert report["output_errors"]["class_logits"]["cosine_similarity"] > 0.9999
    assert {"summary.md", "pr_curves.png", "confidence_histogram.png", "examples.png"} <= {
        p.name for p in report_dir.iterdir()
    }
    # A gate that cannot be met: any drop larger than -1 points (i.e. the model must gain a point) fails.
    failing = runner.invoke(
        evaluate_main,
        [str(artifact(converted, "fp32")), "--reference", str(tiny_float_run), "--max-drop", "-1"],
    )
    assert failing.exit_code == 1 and "dropped" in failing.output


def test_eval_without_data_or_metadata_says_so(converted, tmp_path):
    import shutil

    lonely = tmp_path / "lonely.tflite"
    shutil.copy(artifact(converted, "fp32"), lonely)
    # The converted file embeds the dataset path; strip it to a bare flatbuffer copy.
    data = lonely.read_bytes()
    lonely.write_bytes(data[: data.find(b"PK\x03\x04")])
    result = CliRunner().invoke(evaluate_main, [str(lonely)])
    assert result.exit_code == 1 and "no --data given and the model carries no dataset metadata" in result.output


def test_eval_refuses_files_that_are_not_models(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = CliRunner().invoke(evaluate_main, [str(tmp_path / "notes.txt"), "--data", "x.yaml"])
    assert result.exit_code == 1 and "unknown model type" in result.output


def test_bundle_and_verify_from_the_cli(converted, tmp_path):
    runner = CliRunner()
    out = tmp_path / "bundle"
    made = runner.invoke(cli, ["bundle", str(artifact(converted, "int8")), "--out", str(out), "--zip"])
    assert made.exit_code == 0, made.output
    assert (tmp_path / "bundle.zip").is_file()
    assert runner.invoke(cli, ["bundle", str(out), "--verify"]).exit_code == 0
    assert runner.invoke(evaluate_main, [str(out)]).exit_code == 0
    (out / "labels.txt").write_text("tampered\n")
    failed = runner.invoke(cli, ["bundle", str(out), "--verify"])
    assert failed.exit_code == 1 and "labels.txt: sha256 mismatch" in failed.output


def test_data_synth_and_check(tmp_path):
    runner = CliRunner()
    made = runner.invoke(
        cli, ["data", "synth", str(tmp_path / "s"), "--images", "6", "--classes", "2", "--imgsz", "64"]
    )
    assert made.exit_code == 0, made.output
    checked = runner.invoke(cli, ["data", "check", str(tmp_path / "s" / "data.yaml")])
    assert checked.exit_code == 0 and "train:" in checked.output and "val:" in checked.output
    (tmp_path / "s" / "labels" / "train" / "synth_00000.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    broken = runner.invoke(cli, ["data", "check", str(tmp_path / "s" / "data.yaml")])
    assert broken.exit_code == 1 and "synth_00000.txt:1: class id 7" in broken.output
