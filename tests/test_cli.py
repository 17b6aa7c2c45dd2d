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


def test_convert_says_what_to_ship(converted):
    report = json.loads((converted / "report.json").read_text())
    rows = {row["recipe"]: row for row in report["rows"]}
    recommended = report["recommended"]
    # CPU: the faster of fp32 and int8 among those within the default budget (or the more accurate of the two).
    within = [name for name in ("fp32", "int8") if rows[name]["delta_map50_95"] >= -0.5]
    fastest = min(within, key=lambda name: rows[name]["latency_ms_p50"]) if within else "fp32"
    assert recommended["cpu"]["recipe"] == fastest
    # Neither artifact has int8 I/O: nothing for an NPU or a microcontroller, and the report says so.
    assert recommended["npu"] is None and recommended["mcu"] is None
    text = (converted / "report.md").read_text()
    assert "## What to ship" in text and f"`{artifact(converted, fastest).name}`" in text


def test_eval_json_report(converted, tiny_float_run, tmp_path):
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


def test_eval_gate_against_a_reference_that_scores_one(squares, tmp_path):
    """The square detector scores mAP50-95 1.0; one predicting 0.4 grid units a side instead of 0.5 (its cell) finds
    every square at IoU 0.64: it scores less, so a gate of 0 points fails and one of 100 passes."""
    from tests.square_detector import save_square_detector

    reference, data = squares
    narrower = save_square_detector(tmp_path / "narrow", data, side=0.4)
    runner = CliRunner()
    arguments = [str(narrower), "--reference", str(reference), "--data", str(data), "--max-drop"]
    passing = runner.invoke(evaluate_main, arguments + ["100"])
    assert passing.exit_code == 0, passing.output
    failing = runner.invoke(evaluate_main, arguments + ["0"])
    assert failing.exit_code == 1 and "dropped" in failing.output
    negative = runner.invoke(evaluate_main, arguments + ["-1"])
    assert negative.exit_code == 2 and "--max-drop" in negative.output


def test_convert_refuses_a_copy_of_an_evaluated_image_even_without_eval(tiny_float_run, tiny_synthetic, tmp_path):
    import shutil

    from tfyolo.data.detection_dataset import DetectionDataset

    folder = tmp_path / "calibration"
    folder.mkdir()
    val = DetectionDataset.from_data_yaml(tiny_synthetic, "val")
    shutil.copy(val.samples[0].image_path, folder / "holiday_photo.png")
    arguments = ["convert", "--model", str(tiny_float_run), "--recipe", "int8", "--no-eval"]
    result = CliRunner().invoke(cli, arguments + ["--calibration", str(folder), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "same content as evaluation images" in result.output
    assert "holiday_photo.png" in result.output


def test_default_calibration_follows_the_models_dataset(tiny_float_run, tmp_path):
    import shutil

    # The model's metadata names a dataset that is not here: refuse, never fall back to synthetic shapes.
    moved = tmp_path / "moved"
    moved.mkdir()
    from tfyolo.metadata import find_model_metadata, replace_model_file_metadata

    shutil.copy(tiny_float_run, moved / "last.keras")
    metadata = find_model_metadata(moved / "last.keras")
    replace_model_file_metadata(moved / "last.keras", dict(metadata, data=str(tmp_path / "gone" / "data.yaml")))
    arguments = ["convert", "--model", str(moved / "last.keras"), "--recipe", "int8", "--no-eval"]
    result = CliRunner().invoke(cli, arguments + ["--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "which is not here, and no --calibration was given" in result.output
    assert not (tmp_path / "out" / "moved_int8.tflite").exists()


def test_converted_rows_say_where_calibration_came_from(converted, tiny_synthetic):
    report = json.loads((converted / "report.json").read_text())
    assert report["calibration"]["source"] == f"{tiny_synthetic} [train]"
    latency = report["latency"]
    assert latency["rounds"] >= 10 and len(latency["load_average"]) == 2
    rows = {row["recipe"]: row for row in report["rows"]}
    assert rows["fp32"]["latency_ratio_vs_fp32"] == 1.0 and rows["int8"]["latency_ms_p50"] > 0


def test_missing_qat_model_is_an_error(tiny_float_run, tmp_path):
    arguments = ["convert", "--model", str(tiny_float_run), "--qat-model", str(tmp_path / "absent.h5")]
    result = CliRunner().invoke(cli, arguments + ["--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "absent.h5" in result.output and "does not exist" in result.output


def test_qat_distill_learns_from_the_train_images_with_the_distillation_defaults(
    tiny_float_run, tiny_synthetic, tmp_path, monkeypatch
):
    """`tfyolo qat --distill` hands the library the data's train images (none of its val images) and the distillation
    defaults the measurements chose (Adam at 1e-5, batch 4), what the user gave instead where given, and ends with a
    summary naming the epoch kept. The training itself is tests/test_distillation.py's (large)."""
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.qat import distillation

    calls = []

    def fake_distill(model_path, images, out, config, progress):
        calls.append((model_path, images, out, config))
        history = [{"epoch": 0, "held_out_loss": 0.5, "best": True}]
        history += [{"epoch": 1, "held_out_loss": 0.4, "best": True, "seconds": 1.0}]
        for epoch in history:
            progress(epoch)
        return history

    monkeypatch.setattr(distillation, "distill_qat_model", fake_distill)
    defaults = distillation.DistillationConfig()
    rate = f"{defaults.learning_rate:.0e}".replace("e-0", "e-")  # 1e-5, as the help writes it
    written = f"--batch {defaults.batch}, --lr0 {rate} (Adam), --calibration-images "
    help_text = " ".join(CliRunner().invoke(cli, ["qat", "--help"]).output.split())
    assert written + f"{distillation.DISTILLATION_IMAGES};" in help_text
    arguments = ["qat", "--model", str(tiny_float_run), "--data", str(tiny_synthetic), "--distill", "--epochs", "1"]
    result = CliRunner().invoke(cli, arguments + ["--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    _, images, out, config = calls[-1]
    train = len(DetectionDataset.from_data_yaml(tiny_synthetic, "train").samples)
    assert images.shape == (train, 64, 64, 3) and out == tmp_path / "a" / "best.h5"
    assert (config.epochs, config.learning_rate, config.batch, config.seed) == (1, 1e-5, 4, 0)
    assert "Best: epoch 1, held-out loss 0.4000 (start 0.5000)" in result.output
    assert json.loads((tmp_path / "a" / "history.json").read_text())[1]["held_out_loss"] == 0.4
    given = ["--lr0", "3e-5", "--batch", "2", "--calibration-images", "5", "--seed", "1"]
    result = CliRunner().invoke(cli, arguments + given + ["--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    _, images, _, config = calls[-1]
    assert len(images) == 5 and (config.learning_rate, config.batch, config.seed) == (3e-5, 2, 1)


def test_qat_distill_refuses_the_options_of_a_labeled_fine_tune_and_learning_from_val(
    tiny_float_run, tiny_synthetic, tmp_path
):
    arguments = ["qat", "--model", str(tiny_float_run), "--distill", "--staged", "--mosaic", "0.5"]
    result = CliRunner().invoke(cli, arguments + ["--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "--mosaic, --staged: options of the labeled fine-tune" in result.output and not (tmp_path / "out").exists()
    same = tmp_path / "same.yaml"  # train and val one folder, as coco128's own data.yaml
    same.write_text(f"path: {tiny_synthetic.parent}\ntrain: images/val\nval: images/val\nnames: [circle, square]\n")
    arguments = ["qat", "--model", str(tiny_float_run), "--data", str(same), "--distill"]
    result = CliRunner().invoke(cli, arguments + ["--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "--force-training-overlap" in result.output, result.output
    assert "the train images QAT by distillation learns from" in result.output
    for option in ("--preserve", "--resume"):
        flag = [option, "prune"] if option == "--preserve" else [option]
        result = CliRunner().invoke(cli, ["qat", "--model", str(tiny_float_run), "--distill", *flag, "--out", "o"])
        assert result.exit_code == 2 and f"{option}: options of the labeled fine-tune" in result.output


def test_convert_and_eval_report_real_numbers_on_a_detector_that_works(squares, tmp_path):
    """The hand-built square detector scores 1.0 in float. Its int8 model: the box logits span [-30, 0], one int8
    step 30/255 = 0.12, so each side's two-bin split is at worst 0.47/0.53 and its distance 0.5 +- 0.03 cells
    (0.47 px): every box keeps IoU >= 0.88 with its square, a hit at 0.50 ... 0.85 at least, so mAP50 = 1.0 and
    mAP50-95 >= 0.8, whichever quantizer. A model whose boxes are 0.8 of each square (IoU 0.64) scores 0.3: 70
    points lower."""
    from tests.square_detector import save_square_detector

    model, data = squares
    out = tmp_path / "convert"
    recipes = ["--recipe", "fp32", "--recipe", "int8_tflite", "--recipe", "int8"]
    converted = CliRunner().invoke(cli, ["convert", "--model", str(model), *recipes, "--out", str(out)])
    assert converted.exit_code == 0, converted.output
    report = json.loads((out / "report.json").read_text())
    assert report["calibration"]["source"] == f"{data} [train]"  # the model's own dataset, by default
    rows = {row["recipe"]: row for row in report["rows"]}
    assert rows["float"]["map50_95"] == pytest.approx(1.0) and rows["fp32"]["map50_95"] == pytest.approx(1.0)
    for name in ("int8_tflite", "int8"):
        assert rows[name]["map50"] == pytest.approx(1.0) and rows[name]["map50_95"] >= 0.8, name

    evaluated = CliRunner().invoke(
        evaluate_main,
        [str(artifact(out, "int8")), "--reference", str(model), "--max-drop", "20", "--json", str(tmp_path / "e.json")],
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads((tmp_path / "e.json").read_text())["detection_agreement"]["agreement"] == 1.0

    smaller = save_square_detector(tmp_path / "smaller", data, side=0.4)
    gated = CliRunner().invoke(
        evaluate_main, [str(smaller), "--reference", str(model), "--max-drop", "69", "--json", str(tmp_path / "s.json")]
    )
    assert gated.exit_code == 1 and "dropped 70.00 points" in gated.output
    result = json.loads((tmp_path / "s.json").read_text())
    assert result["map50_95"] == pytest.approx(0.3) and result["map50"] == pytest.approx(1.0)
    assert result["delta_map50_95"] == pytest.approx(-70.0)


def test_a_kernel_ai_edge_quantizer_cannot_scale_is_an_error_not_a_zero(squares, tmp_path):
    """The square detector with its constant convolutions' kernels exactly 0: ai-edge-quantizer gives such a channel
    a weight scale of ~1e-12 and its int32 bias overflows, so the layer would output one value whatever its input
    (mAP 0, no error). The row fails naming the way out; TFLiteConverter's int8 of the same model still works."""
    from tests.square_detector import save_square_detector

    _, data = squares
    model = save_square_detector(tmp_path / "zero", data, slope=0.0)
    out = tmp_path / "convert"
    recipes = ["--recipe", "int8_tflite", "--recipe", "int8"]
    converted = CliRunner().invoke(cli, ["convert", "--model", str(model), *recipes, "--out", str(out)])
    assert converted.exit_code == 1 and "recipe(s) failed: ['int8']" in converted.output
    rows = {row["recipe"]: row for row in json.loads((out / "report.json").read_text())["rows"]}
    assert "overflowed every int32 bias" in rows["int8"]["error"] and "int8_tflite" in rows["int8"]["error"]
    assert rows["int8_tflite"]["map50_95"] >= 0.8


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


def run_guarded(module, function, *arguments, path=(), ignored=(), **options):
    """`tfyolo`'s console script as installed, with `module.function` standing in for the command (importable from
    the project or from a folder of `path`). The script starts with the forwarded signals at their defaults, as from
    an interactive shell, whatever the test runner ignores, and with the signals of `ignored` ignored."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from tfyolo.cli.native_guard import FORWARDED

    def dispositions():
        for signum in FORWARDED:
            signal.signal(signum, signal.SIG_IGN if signum in ignored else signal.SIG_DFL)

    code = f"from tfyolo.cli.native_guard import _guarded; _guarded('tfyolo', {module!r}, {function!r}, in_place=False)"
    environment = {key: value for key, value in os.environ.items() if key != "TFYOLO_GUARDED"}
    environment["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), *map(str, path)])
    command = [sys.executable, "-c", code, *arguments]
    return subprocess.Popen(
        command, env=environment, stderr=subprocess.PIPE, text=True, preexec_fn=dispositions, **options
    )


def test_a_native_crash_in_a_command_is_one_line_naming_the_command():
    """Issue 34: a crash that only real inputs trigger got past the child check and ended the CLI with no word. The
    console script runs the command in a child; here the command is CPython's own SIGSEGV, a real native crash."""
    guarded = run_guarded("faulthandler", "_sigsegv", "eval", "model.tflite")
    _, stderr = guarded.communicate(timeout=60)
    assert guarded.returncode == 1
    assert stderr.strip().splitlines() == [
        "tfyolo eval model.tflite: crashed in native code (SIGSEGV): TensorFlow, LiteRT or TFLite Micro could not go "
        "on with a file it read, which is malformed or beyond what it can run."
    ]
    guarded = run_guarded("faulthandler", "_sigsegv", "eval", "a\nb.tflite")  # a file name may hold a newline
    _, stderr = guarded.communicate(timeout=60)
    assert len(stderr.strip().splitlines()) == 1 and "'a\\nb.tflite'" in stderr


def test_a_guarded_command_s_own_ending_passes_through_and_sigterm_reaches_it():
    """An exit status is passed on as it came; a SIGTERM or SIGINT sent to the console script alone (a service
    manager's stop, a wrapper's interrupt) reaches the command, and the script then ends by the same signal, leaving
    no child behind; a SIGKILL of the script ends the command too."""
    import signal
    import sys
    import time

    import psutil

    def gone(process):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.05)
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE

    def in_pause(child):
        """Asleep and using no CPU: past its start-up (and so past its request to die with the parent), in pause()."""
        before = sum(child.cpu_times()[:2])
        time.sleep(0.2)
        return child.status() == psutil.STATUS_SLEEPING and sum(child.cpu_times()[:2]) == before

    def paused_command():
        guarded = run_guarded("signal", "pause", start_new_session=True)  # no controlling terminal
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not psutil.Process(guarded.pid).children():
            time.sleep(0.05)
        (child,) = psutil.Process(guarded.pid).children()
        while time.monotonic() < deadline and not in_pause(child):
            pass
        return guarded, child

    assert run_guarded("sys", "exit").wait(timeout=60) == 0
    for signum in (signal.SIGTERM, signal.SIGINT):  # SIGINT: from a program, not a terminal (there is none here)
        guarded, child = paused_command()
        guarded.send_signal(signum)
        assert guarded.wait(timeout=60) == -signum and gone(child)
    if sys.platform.startswith("linux"):  # PR_SET_PDEATHSIG
        guarded, child = paused_command()
        guarded.kill()  # kill -9 of the script: no handler runs, the kernel ends the command
        assert gone(child)


def test_an_interrupt_sent_to_the_whole_group_interrupts_the_command_once(tmp_path):
    """With no terminal, a program that sends SIGINT to the process group reaches the command directly and through
    the script's forwarding. The command takes one: its clean-up after the first runs to the end, uninterrupted. The
    script is held stopped until the command is in its clean-up, as a loaded machine may hold it, and the clean-up
    waits (under the guard's 1 s) until the script has forwarded its copy, so that the copy arrives there."""
    import os
    import signal
    import subprocess
    import time

    import psutil

    marker = tmp_path / "forwarded"
    (tmp_path / "slow_cleanup.py").write_text(
        "import os, signal, sys, time\n"
        "def main():\n"
        "    try:\n"
        "        print('ready', flush=True)\n"
        "        signal.pause()\n"
        "    except KeyboardInterrupt:\n"
        "        print('interrupted', flush=True)\n"
        "        deadline = time.monotonic() + 0.8\n"
        f"        while not os.path.exists({str(marker)!r}) and time.monotonic() < deadline:\n"
        "            time.sleep(0.01)\n"
        "        time.sleep(0.05)  # the forwarded copy is delivered by now\n"
        "        print('cleaned up', flush=True)\n"
        "        sys.exit(130)\n"
    )

    def forwarded(pid):
        """The script has taken its SIGINT (none pending) and is back waiting for the command."""
        fields = dict(line.split(":\t", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":\t" in line)
        pending = int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)
        return not pending & (1 << (signal.SIGINT - 1)) and psutil.Process(pid).status() == psutil.STATUS_SLEEPING

    guarded = run_guarded(
        "slow_cleanup",
        "main",
        path=[tmp_path],
        start_new_session=True,
        stdout=subprocess.PIPE,  # no terminal
    )
    try:
        assert guarded.stdout.readline() == "ready\n"
        guarded.send_signal(signal.SIGSTOP)
        os.killpg(guarded.pid, signal.SIGINT)  # the script and the command: one process group
        assert guarded.stdout.readline() == "interrupted\n"
        guarded.send_signal(signal.SIGCONT)  # the script forwards its SIGINT now
        deadline = time.monotonic() + 0.7
        while not forwarded(guarded.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        marker.touch()
        stdout, stderr = guarded.communicate(timeout=60)
        assert (guarded.returncode, stdout, stderr) == (130, "cleaned up\n", "")
    finally:
        guarded.send_signal(signal.SIGCONT)
        if guarded.poll() is None:
            os.killpg(guarded.pid, signal.SIGKILL)


def test_a_signal_the_script_was_started_ignoring_stays_ignored_in_the_command(tmp_path):
    """`nohup tfyolo ...` or a shell's background job starts the script with SIGHUP or SIGINT ignored: the command
    must ignore them too, not die of the hangup it was started to escape."""
    import signal
    import subprocess

    (tmp_path / "dispositions.py").write_text(
        "import signal\n"
        "def main():\n"
        "    print([signal.getsignal(s) is signal.SIG_IGN for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)])\n"
    )
    ignored = (signal.SIGHUP, signal.SIGINT)
    guarded = run_guarded("dispositions", "main", path=[tmp_path], ignored=ignored, stdout=subprocess.PIPE)
    stdout, stderr = guarded.communicate(timeout=60)
    assert (guarded.returncode, stdout, stderr) == (0, "[True, True, False]\n", "")


def test_the_console_scripts_run_their_command_through_the_guard():
    """setup.cfg's entry points are the guard's (an entry point straight to the command would contain nothing)."""
    import configparser
    from pathlib import Path

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    lines = setup["options.entry_points"]["console_scripts"].split("\n")
    scripts = dict(line.replace(" ", "").split("=") for line in lines if line)
    assert scripts == {"tfyolo": "tfyolo.cli.native_guard:tfyolo", "tfyolo-eval": "tfyolo.cli.native_guard:tfyolo_eval"}


def test_eval_spread_of_a_uniform_loss_is_zero(squares, tmp_path):
    """Every square found at IoU 0.64 scores AP50-95 0.3 (hits at 0.50, 0.55, 0.60) on any half of the images, the
    reference 1.0: a delta of -70 points with no spread at all; without a reference --spread is refused."""
    from tests.square_detector import save_square_detector

    reference, data = squares
    narrower = save_square_detector(tmp_path / "narrow", data, side=0.4)
    json_path = tmp_path / "spread.json"
    arguments = [str(narrower), "--data", str(data), "--spread", "8", "--json", str(json_path)]
    result = CliRunner().invoke(evaluate_main, arguments + ["--reference", str(reference)])
    assert result.exit_code == 0, result.output
    spread = json.loads(json_path.read_text())["delta_map50_95_spread"]
    assert spread["difference"] == pytest.approx(-70.0, abs=1e-6) and spread["halves"] == 8
    assert spread["standard_error"] == pytest.approx(0.0, abs=1e-6)
    assert "standard error 0.00 from 8 random halves" in result.output
    refused = CliRunner().invoke(evaluate_main, arguments)
    assert refused.exit_code == 2 and "--spread needs --reference" in refused.output
