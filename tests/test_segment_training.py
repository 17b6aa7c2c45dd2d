"""Segmentation training end to end on a tiny set with polygon labels; a detection run's saved arguments are as
before tasks existed."""

import json
import shutil

import numpy as np
import pytest

from tfyolo.errors import ConfigError
from tfyolo.metadata import read_model_file_metadata
from tfyolo.training.train_config import TrainConfig
from tfyolo.training.trainer import Trainer


@pytest.fixture(scope="module")
def polygon_set(tmp_path_factory):
    """The tiny synthetic set (24 64px images, 2 classes) with each box written as a four-point polygon."""
    from tfyolo.data.synthetic import write_synthetic_dataset

    out = tmp_path_factory.mktemp("synth_seg")
    yaml_path = write_synthetic_dataset(out / "boxes", images=24, num_classes=2, size=64, seed=3, val_fraction=0.2)
    shutil.copytree(yaml_path.parent, out / "polygons")
    for label in (out / "polygons").rglob("labels/**/*.txt"):
        lines = []
        for line in label.read_text().splitlines():
            c, x, y, w, h = line.split()
            x1, y1, x2, y2 = (
                float(x) - float(w) / 2,
                float(y) - float(h) / 2,
                float(x) + float(w) / 2,
                float(y) + float(h) / 2,
            )
            lines.append(f"{c} {x1:.6f} {y1:.6f} {x2:.6f} {y1:.6f} {x2:.6f} {y2:.6f} {x1:.6f} {y2:.6f}")
        label.write_text("\n".join(lines) + ("\n" if lines else ""))
    return yaml_path, out / "polygons" / "data.yaml"


def config(data, out, **changes):
    values = dict(data=str(data), out=str(out), imgsz=64, epochs=1, batch=4, warmup_epochs=0.0, val_batch=8, seed=1)
    return TrainConfig(**{**values, **changes})


@pytest.mark.large  # 30 s of training on 2 cores; the loss and the masks have fast tests
def test_a_segmentation_run_trains_and_logs_its_mask_loss(polygon_set, tmp_path):
    _, polygons = polygon_set
    history = Trainer(config(polygons, tmp_path, task="segment")).fit()
    assert np.isfinite(history[-1]["mask_loss"]) and history[-1]["mask_loss"] > 0
    assert history[-1]["map50_95"] is not None
    assert json.loads((tmp_path / "train_args.json").read_text())["task"] == "segment"
    assert read_model_file_metadata(tmp_path / "best.keras")["model"]["task"] == "segment"


@pytest.mark.large  # 60 s of training on 2 cores; the loss has fast tests (test_yolo26_segmentation_loss)
def test_a_yolo26_segmentation_run_trains_both_heads_and_saves_each(polygon_set, tmp_path):
    """YOLO26-seg trains with both heads and the semantic branch; each head is saved alone as a segmenter, without
    the training-only branch, and validation scores masks."""
    from tfyolo.models.model_io import load_keras_model

    _, polygons = polygon_set
    history = Trainer(config(polygons, tmp_path, task="segment", family="yolo26")).fit()
    for name in ("mask_loss", "semantic_loss"):
        assert np.isfinite(history[-1][name]) and history[-1][name] > 0
    assert history[-1]["mask_map50_95"] is not None
    for head in ("one2one", "one2many"):
        path = tmp_path / f"best_{head}.keras"
        model_meta = read_model_file_metadata(path)["model"]
        assert (model_meta["task"], model_meta["head"]) == ("segment", head)
        assert set(load_keras_model(path).output_names) == {
            "box_distribution",
            "class_logits",
            "mask_coefficients",
            "mask_prototypes",
        }


def test_a_detection_run_s_arguments_name_no_task(tmp_path):
    detect = config("data.yaml", tmp_path)
    assert "task" not in detect.to_dict()
    assert TrainConfig.from_dict(detect.to_dict()) == detect
    segment = config("data.yaml", tmp_path, task="segment")
    assert TrainConfig.from_dict(segment.to_dict()).task == "segment"
    with pytest.raises(ConfigError, match=r"task must be one of \['detect', 'segment'\], received 'pose'"):
        config("data.yaml", tmp_path, task="pose")


def test_segmentation_without_polygon_labels_is_one_clear_line(polygon_set, tmp_path):
    boxes, _ = polygon_set
    with pytest.raises(ConfigError, match="learns from polygon labels") as error:
        Trainer(config(boxes, tmp_path, task="segment"))
    assert "\n" not in str(error.value)
