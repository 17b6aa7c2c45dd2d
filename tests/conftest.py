import contextlib
import fcntl
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATASETS = SHARED / "datasets"


def shared_dataset(name):
    """Path of a dataset under ../shared/datasets, or a skip that says why (a fresh clone has no ../shared)."""
    path = DATASETS / name
    if not path.is_dir():
        pytest.skip(f"needs ../shared/datasets/{name} beside the project (present in CI, absent in a bare clone)")
    return path


@contextlib.contextmanager
def made_once(tmp_path_factory, worker_id, name):
    """A folder for a session fixture's files, made once for all of pytest-xdist's workers: the first to arrive holds
    a lock while it fills the folder, the others then find it filled (the value yielded says whether to fill it).
    Without xdist, a folder of this session's own."""
    if worker_id == "master":
        yield tmp_path_factory.mktemp(name), True
        return
    folder = tmp_path_factory.getbasetemp().parent / name  # the session's root, shared by its workers
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder / ".done"
        if done.is_file():
            yield folder, False
            return
        shutil.rmtree(folder, ignore_errors=True)  # a worker that failed while filling it
        folder.mkdir()
        yield folder, True
        done.touch()


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory, worker_id):
    """24 synthetic 64px images, 2 classes: 19 train, 5 val."""
    from tfyolo.data.synthetic import write_synthetic_dataset

    with made_once(tmp_path_factory, worker_id, "synth") as (out, fill):
        if fill:
            write_synthetic_dataset(out, images=24, num_classes=2, size=64, seed=3, val_fraction=0.2)
    return out / "data.yaml"


@pytest.fixture(scope="session")
def tiny_model():
    from tfyolo.models.model_config import ModelConfig
    from tfyolo.models.yolo_detector import build_yolo_detector

    return build_yolo_detector(ModelConfig(num_classes=2, input_size=64))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_float_run(tiny_synthetic, tmp_path_factory, worker_id):
    """One epoch of real training on the tiny synthetic set: realistic BatchNorm statistics and ranges. Trained once
    for all workers (25-45 s of tracing and training)."""
    from tfyolo.training.train_config import TrainConfig
    from tfyolo.training.trainer import Trainer

    with made_once(tmp_path_factory, worker_id, "tiny_float") as (out, fill):
        if fill:
            config = TrainConfig(
                data=str(tiny_synthetic), out=str(out), imgsz=64, epochs=1, batch=4, val_interval=0, seed=2
            )
            Trainer(config).fit()
    return out / "last.keras"


@pytest.fixture(scope="session")
def squares(tmp_path_factory):
    """(model path, data.yaml) of the hand-built square detector, which scores mAP50-95 1.0 in float."""
    from tests.square_detector import save_square_detector, write_squares_dataset

    data = write_squares_dataset(tmp_path_factory.mktemp("squares_data"))
    return save_square_detector(tmp_path_factory.mktemp("squares") / "squares", data), data


@pytest.fixture(scope="session")
def tiny_int8(tiny_float_run, tiny_synthetic, tmp_path_factory):
    """The tiny trained model as int8 with int8 I/O (`int8_int8io`), with its embedded metadata."""
    from tfyolo.data.calibration_images import load_calibration_images
    from tfyolo.metadata import embed_metadata
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.quantization.artifact import artifact_metadata
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.recipes_dir import resolve_recipe

    model = load_keras_model(tiny_float_run)
    images, summary = load_calibration_images(tiny_synthetic, 64, 2)
    recipe = resolve_recipe("int8_int8io")
    content = convert(model, recipe, images)
    metadata = artifact_metadata({"names": ["circle", "square"]}, recipe, summary, 64, 2, tiny_float_run)
    path = tmp_path_factory.mktemp("int8") / "tiny_int8_int8io.tflite"
    path.write_bytes(embed_metadata(content, metadata))
    return path


@pytest.fixture
def pennfudan_seg(tmp_path):
    """pennfudan_seg's data.yaml, its labels beside pennfudan's images. Its SOURCE.md ships images/ as relative
    symlinks into ../pennfudan; a copy that flattened them into 40-byte text files (as this checkout's has) cannot
    be read, so the test links the two folders itself."""
    seg, images = shared_dataset("pennfudan_seg"), shared_dataset("pennfudan") / "images"
    root = tmp_path / "pennfudan_seg"
    root.mkdir()
    (root / "images").symlink_to(images)
    (root / "labels").symlink_to(seg / "labels")
    for name in ("train.txt", "val.txt", "data.yaml"):
        shutil.copy(seg / name, root / name)
    return root / "data.yaml"
