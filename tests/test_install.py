"""A non-editable install (a wheel, as `pip install .` builds it) finds the built-in recipes and the default
calibration set, and `tfyolo convert` works from it."""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


@pytest.mark.large
def test_wheel_install_ships_recipes_and_calibration_data(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", dist, PROJECT],
        check=True,
    )
    (wheel,) = dist.glob("tfyolo-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    (site,) = (venv / "lib").glob("python3*/site-packages")
    # TensorFlow and the other dependencies come from the project's environment (a path, so its editable tfyolo
    # finder is not loaded): the wheel's tfyolo is the only one this interpreter sees.
    (site / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([venv / "bin" / "pip", "install", "--quiet", "--no-deps", "--no-index", wheel], check=True)
    script = (
        "import json, pathlib, tfyolo, tfyolo.jobs.run, tfyolo.service.app\n"
        "from tfyolo.quantization.recipes_dir import DEFAULT_CALIBRATION, builtin_recipe_names\n"
        "templates = pathlib.Path(tfyolo.service.app.__file__).parent / 'templates'\n"
        "print(json.dumps({'module': tfyolo.__file__, 'recipes': builtin_recipe_names(),"
        " 'calibration': len(list(DEFAULT_CALIBRATION.glob('*.png'))),"
        " 'templates': sorted(path.name for path in templates.glob('*.html'))}))"
    )
    found = subprocess.run(
        [venv / "bin" / "python", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    found = json.loads(found.stdout.strip().splitlines()[-1])
    assert Path(found["module"]).is_relative_to(venv)
    assert found["recipes"] == [
        "fp32",
        "fp16",
        "dynamic",
        "int8",
        "int8_int8io",
        "int16x8",
        "cluster_int8",
        "prune_int8",
    ]
    assert found["calibration"] == len(list((PROJECT / "calibration_data").glob("*.png"))) == 64
    assert found["templates"] == sorted(p.name for p in (PROJECT / "tfyolo" / "service" / "templates").glob("*.html"))

    model = tmp_path / "tiny.keras"
    subprocess.run(
        [
            venv / "bin" / "python",
            "-c",
            "from tfyolo.models.model_config import ModelConfig\n"
            "from tfyolo.models.yolo_detector import build_yolo_detector\n"
            f"build_yolo_detector(ModelConfig(num_classes=2, input_size=64)).save({str(model)!r})",
        ],
        cwd=tmp_path,
        check=True,
    )
    converted = subprocess.run(
        [venv / "bin" / "tfyolo", "convert", "--model", model, "--recipe", "int8", "--no-eval", "--out", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert converted.returncode == 0, converted.stderr[-2000:]
    assert (tmp_path / "out" / "tiny_int8.tflite").is_file()
    assert "built-in synthetic set" in converted.stderr
