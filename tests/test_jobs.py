"""The job spec is validated once, its report round-trips, and the gate's verdict names what failed."""

import pytest

from tfyolo.errors import ConfigError
from tfyolo.jobs.report import Artifact, JobReport, Verdict, markdown_report
from tfyolo.jobs.spec import JobSpec


@pytest.mark.parametrize(
    "values, message",
    [
        ({"model": "m.keras", "recipe": ["int8"]}, r"unknown key\(s\) \['recipe'\]"),
        ({"model": "m.tflite"}, "a convert job takes a .keras / .h5 / .pt / .onnx file, received 'm.tflite'"),
        ({"model": "m.keras", "kind": "bench"}, "a bench job takes a .tflite file"),
        ({"model": "m.keras", "kind": "compile"}, "job kind: expected one of"),
        ({"model": "m.keras", "recipes": ["int8"], "auto_max_drop": 0.5}, "give one or the other"),
        ({"model": "m.keras", "auto_max_drop": 0.5, "evaluate": False}, "auto_max_drop needs evaluate=True"),
        ({"model": "m.keras", "max_drop": "1"}, "max_drop: expected a number of mAP50-95 points, received '1'"),
        ({"model": "m.keras", "max_drop": float("nan")}, "max_drop: expected a number"),
        ({"model": "m.keras", "auto_max_drop": -1}, "auto_max_drop: a drop of at least 0 points, received -1"),
        ({"model": "m.keras", "threads": 0}, "threads: expected an integer from 1 to 64, received 0"),
        ({"model": "m.tflite", "kind": "bench", "qat_model": "q.h5"}, "belong to convert jobs, not bench"),
        ({"recipes": ["int8"]}, "'model' is required"),
        (
            {"model": "m.keras", "auto_max_drop": 0.5, "target": "ethos-u55"},
            r"target: expected one of \['ethos-u55-32'",
        ),
        ({"model": "m.keras", "target": "ethos-u55-128"}, "target: chooses among the auto search's candidates"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(values, message):
    with pytest.raises(ConfigError, match=message):
        JobSpec.from_dict(values)


def test_a_spec_round_trips_through_plain_data():
    spec = JobSpec.from_dict({"model": "m.keras", "recipes": ["fp32", "int8"], "max_drop": 0.5})
    assert spec.recipes == ("fp32", "int8") and not spec.is_auto
    assert JobSpec.from_dict(spec.to_dict()) == spec


def test_the_gate_names_each_failing_artifact():
    from tfyolo.jobs.run import _verdict

    rows = [
        {"recipe": "float", "delta_map50_95": 0.0},
        {"recipe": "fp32", "delta_map50_95": -0.01},
        {"recipe": "int8", "delta_map50_95": -0.9},
        {"recipe": "int16x8", "delta_map50_95": None, "error": "conversion died"},
    ]
    assert _verdict(rows, None) == Verdict(max_drop=None, passed=None)
    verdict = _verdict(rows, 0.5)
    assert verdict.passed is False and verdict.failing == ("int16x8", "int8")
    assert verdict.reason == "int8 lost more than 0.5 points; int16x8 failed or was not evaluated"
    assert _verdict(rows[:2], 0.5).passed is True
    assert _verdict(rows[:1], 0.5).reason == "no artifact was produced"


def test_a_report_round_trips_and_renders_its_verdict():
    report = JobReport(
        kind="convert",
        model="m.keras",
        data="d.yaml [val]",
        num_images=5,
        calibration={"source": "c", "images_used": 3},
        rows=({"recipe": "int8", "size_bytes": 1234, "map50_95": 0.5, "delta_map50_95": -0.25},),
        artifacts=(Artifact(name="int8", path="x.tflite", sha256="0" * 64, size_bytes=1234, kind="tflite"),),
        latency={"threads": 2, "rounds": 15, "load_average": [0.5, 0.6]},
        verdict=Verdict(max_drop=0.3, passed=True),
    )
    assert JobReport.from_dict(report.to_dict()) == report
    markdown = markdown_report(report.to_dict())
    assert "| int8 | 1,234 | 0.5000 | - | -0.25 | - | - | - |  |" in markdown
    assert "Gate (max drop 0.3 points): PASS" in markdown


def test_training_progress_turns_trainer_events_into_stages_of_batches():
    """The auto search's QAT candidate trains inside a job: its epochs must reach the job's Progress (the terminal
    bars, the service's record) as stages counted in batches, with the epoch's losses as a message."""
    from tfyolo.jobs.progress import Progress, TrainingProgress

    class Recorder(Progress):
        def __init__(self):
            self.events = []

        def message(self, text):
            self.events.append(("message", text))

        def stage(self, name, total, unit="img"):
            self.events.append(("stage", name, total, unit))

        def advance(self, steps=1):
            self.events.append(("advance", steps))

        def end_stage(self):
            self.events.append(("end",))

    recorder = Recorder()
    reporter = TrainingProgress(recorder, "QAT")
    reporter.epoch_start(0, 3, 2)
    reporter.batch_end({"loss": 1.0})
    reporter.batch_end({"loss": 0.5})
    summary = {"epoch": 1, "loss": 0.75, "box_loss": 0.25, "class_loss": 0.25, "dfl_loss": 0.25}
    reporter.epoch_end(dict(summary, images_per_second=12.0))
    assert recorder.events == [
        ("stage", "QAT epoch 1/3", 2, "batch"),
        ("advance", 1),
        ("advance", 1),
        ("end",),
        ("message", "  QAT epoch 1: loss 0.750 (box 0.250 cls 0.250 dfl 0.250), 12.0 img/s"),
    ]
