"""YOLO11 through the rest of the pipeline: training, QAT (plain and staged), compression, the sensitivity ranking and a
service job from a .pt upload. Slow (YOLO11's graph traces for a minute and more): `large`."""

import json

import numpy as np
import pytest

from tests.conftest import SHARED
from tests.test_service import AUTH, TOKEN
from tests.ultralytics_layouts import write_ultralytics_checkpoint

pytestmark = pytest.mark.large

PENNFUDAN_Y11 = SHARED / "weights" / "ultralytics_yolo11n_pennfudan"


@pytest.fixture(scope="module")
def trained_yolo11(tiny_synthetic, tmp_path_factory):
    """One epoch of YOLO11n from scratch on the tiny synthetic set, through the trainer."""
    from tfyolo.training.train_config import TrainConfig
    from tfyolo.training.trainer import Trainer

    out = tmp_path_factory.mktemp("y11_train")
    config = TrainConfig(
        data=str(tiny_synthetic), out=str(out), family="yolo11", imgsz=64, epochs=1, batch=4, val_interval=1, seed=2
    )
    history = Trainer(config).fit()
    return out, history


def test_yolo11_trains_and_its_model_says_what_it_is(trained_yolo11):
    from tfyolo.metadata import find_model_metadata

    out, history = trained_yolo11
    assert np.isfinite(history[0]["loss"]) and history[0]["map50_95"] is not None
    metadata = find_model_metadata(out / "best.keras")
    assert (metadata["family"], metadata["scale"], metadata["reg_max"]) == ("yolo11", "n", 16)


def test_yolo11_sensitivity_sections_follow_its_layer_roles(trained_yolo11, tiny_synthetic):
    from tfyolo.data.calibration_images import load_calibration_images
    from tfyolo.models.families import FAMILIES
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.quantization.sensitivity import layer_sensitivity

    out, _ = trained_yolo11
    images, _ = load_calibration_images(tiny_synthetic, 64, 4)
    ranking = layer_sensitivity(load_keras_model(out / "best.keras"), images, family=FAMILIES["yolo11"])
    sections = {entry["layer"]: entry["section"] for entry in ranking}
    assert {"backbone", "neck", "head"} == set(sections.values())
    assert all(section == "backbone" for layer, section in sections.items() if layer.startswith("psa_"))


@pytest.mark.parametrize("staged", [False, True])
def test_yolo11_qat_trains_and_converts(staged, tmp_path):
    """On the imported PennFudan YOLO11n at 320 (a converged model): finite losses, and int8 from the learned
    ranges, integer-only unless the head was kept in float."""
    if not (PENNFUDAN_Y11 / "best.pt").is_file():
        pytest.skip("needs ../shared/weights/ultralytics_yolo11n_pennfudan (present in CI)")
    from tfyolo.importers.ultralytics_import import import_weights
    from tfyolo.models.model_io import save_model_atomic
    from tfyolo.qat.qat_io import load_any_detector
    from tfyolo.qat.qat_training import trainer_for
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.recipe import Recipe
    from tfyolo.tflite_runtime import inspect_tflite
    from tfyolo.training.train_config import QAT_FINE_TUNE, TrainConfig

    data = SHARED / "datasets" / "pennfudan" / "data.yaml"
    model, metadata = import_weights(PENNFUDAN_Y11 / "best.pt")
    save_model_atomic(model, tmp_path / "y11.keras", dict(metadata, data=str(data)))
    settings = dict(QAT_FINE_TUNE, batch=8, qat_calibration_images=16)
    config = TrainConfig(
        data=str(data),
        out=str(tmp_path / "qat"),
        imgsz=320,
        epochs=1,
        val_interval=0,
        qat_from=str(tmp_path / "y11.keras"),
        qat_staged=staged,
        **settings,
    )
    history = trainer_for(config).fit()
    assert np.isfinite(history[0]["loss"])
    qat = load_any_detector(tmp_path / "qat" / "last.h5")
    inspection = inspect_tflite(convert(qat, Recipe(name="int8", mode="int8")))
    assert inspection["ops"]["BATCH_MATMUL"] == 4  # the attention's two per head, both heads
    floats = set(inspection["float_compute_ops"])
    assert (floats == set()) if not staged else (floats and "BATCH_MATMUL" not in floats)


def test_a_yolo11_checkpoint_upload_runs_as_a_service_job(squares, tmp_path):
    """The .pt goes through the restricted unpickler, is imported as YOLO11 and converted; its int8 artifact is
    integer-only."""
    from fastapi.testclient import TestClient

    from tfyolo.service.app import ServiceConfig, create_app
    from tfyolo.service.queue import make_huey
    from tfyolo.service.worker import execute_job

    _, data = squares
    checkpoint = tmp_path / "best.pt"
    write_ultralytics_checkpoint(checkpoint, "yolo11", "n", num_classes=1, imgsz=64)
    data_dir = tmp_path / "service"
    data_dir.mkdir()
    (data_dir / "datasets.json").write_text(json.dumps({"squares": str(data)}))
    client = TestClient(create_app(ServiceConfig(data_dir=str(data_dir), token=TOKEN), make_huey(data_dir)))
    response = client.post(
        "/jobs",
        headers=AUTH,
        files={"model": ("best.pt", checkpoint.read_bytes())},
        data={"recipes": "fp32,int8", "data_dataset": "squares", "bundle": "false"},
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    execute_job(data_dir, job_id, in_process=True)
    record = client.get(f"/jobs/{job_id}", headers=AUTH).json()
    assert record["state"] == "succeeded", record
    rows = {row["recipe"]: row for row in client.get(f"/jobs/{job_id}/report", headers=AUTH).json()["rows"]}
    assert rows["int8"]["full_integer"] and rows["int8"]["ops"]["BATCH_MATMUL"] == 4
