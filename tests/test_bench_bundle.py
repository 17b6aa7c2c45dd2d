import importlib.util
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tfyolo.bundle import MANIFEST, make_bundle, verify_bundle


@pytest.fixture(scope="module")
def val_images(tiny_synthetic):
    from tfyolo.data.detection_dataset import DetectionDataset

    return [sample.image_path for sample in DetectionDataset.from_data_yaml(tiny_synthetic, "val").samples[:2]]


@pytest.fixture
def bundle_dir(tiny_int8, val_images, tmp_path):
    for relative, data in make_bundle(tiny_int8, val_images).items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(data)
    return tmp_path


def _conv_stack(depth):
    """`depth` identical 3x3 convolutions on a 64x64x32 input: the cost is `depth` times one layer's."""
    from tfyolo.compat import keras, tf

    images = keras.Input((64, 64, 32), batch_size=1)
    x = images
    for _ in range(depth):
        x = keras.layers.Conv2D(32, 3, padding="same")(x)
    model = keras.Model(images, x)
    function = tf.function(lambda inputs: model(inputs))
    concrete = function.get_concrete_function(tf.TensorSpec([1, 64, 64, 32], tf.float32))
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], function).convert()


def test_interleaved_latency_sees_twice_the_work(tmp_path):
    from tfyolo.benchmark import benchmark_models, interleaved_latency

    models = {"single": _conv_stack(8), "double": _conv_stack(16)}
    result = interleaved_latency(models, num_threads=1, rounds=6, block_ms=40)
    single, double = result["models"]["single"], result["models"]["double"]
    for stats in (single, double):
        assert 0 < stats["latency_ms_min"] <= stats["latency_ms_p50"] <= stats["latency_ms_p90"]
        assert stats["runs"] >= 6
    # Twice the convolutions of the same shape: about twice the time. The band allows for per-invoke overhead
    # (pulls the ratio below 2) and cache effects, not for timing the models at different moments.
    assert 1.4 < double["latency_ms_p50"] / single["latency_ms_p50"] < 2.8
    assert len(result["load_average"]) == 2

    paths = []
    for name, content in models.items():
        (tmp_path / f"{name}.tflite").write_bytes(content)
        paths.append(tmp_path / f"{name}.tflite")
    results = benchmark_models(paths, threads=[1], warmup=3, runs=20)
    first, second = (model["runs"][0] for model in results["models"])
    assert first["ratio_vs_first"] == 1.0 and 1.4 < second["ratio_vs_first"] < 2.8
    assert second["throughput_fps"] == pytest.approx(1000 / second["latency_ms_mean"])
    assert results["models"][0]["detector"] is None  # not a detector: timed all the same


def test_bench_reads_the_model(tiny_int8):
    from tfyolo.benchmark import benchmark_models

    results = benchmark_models([tiny_int8], threads=[2], warmup=2, runs=5)
    model = results["models"][0]
    assert model["runs"][0]["threads"] == 2 and model["runs"][0]["peak_rss_mb"] > 10
    assert model["ops"]["CONV_2D"] > 50 and model["float_compute_ops"] == 0
    assert model["detector"] == {
        "layout": "tfyolo",
        "input_size": 64,
        "input_layout": "NHWC",
        "num_classes": 2,
        "reg_max": 16,
    }


def test_embedded_metadata_is_readable_by_zip_readers(tiny_int8):
    import zipfile

    from tfyolo.evaluation.runners import TFLiteRunner

    with zipfile.ZipFile(tiny_int8) as archive:
        metadata = json.loads(archive.read("metadata.json"))
    assert metadata["imgsz"] == [64, 64] and metadata["names"] == {"0": "circle", "1": "square"}
    assert metadata["stride"] == 32 and metadata["recipe"]["name"] == "int8_int8io"
    TFLiteRunner(tiny_int8)  # the appended archive does not disturb the interpreter


def test_bundle_verifies(bundle_dir):
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    assert manifest["input"]["dtype"] == "int8" and manifest["input"]["shape"] == [1, 64, 64, 3]
    assert {o["name"] for o in manifest["outputs"]} == {"box_distribution", "class_logits"}
    assert any(entry["op"] == "CONV_2D" for entry in manifest["tflite_op_versions"])
    assert (bundle_dir / "labels.txt").read_text().split() == ["circle", "square"]
    assert verify_bundle(bundle_dir) == []


def test_changing_any_byte_of_any_file_fails_verify(bundle_dir):
    files = sorted(p for p in bundle_dir.rglob("*") if p.is_file())
    assert len(files) >= 9
    for path in files:
        original = path.read_bytes()
        changed = bytearray(original)
        changed[len(changed) // 2] ^= 0x01
        path.write_bytes(bytes(changed))
        problems = verify_bundle(bundle_dir)
        assert problems and any(path.name in problem for problem in problems), (path, problems)
        path.write_bytes(original)
    assert verify_bundle(bundle_dir) == []


def test_golden_mismatch_is_reported(bundle_dir):
    # Re-hash a tampered golden output so only the replay can catch it.
    import hashlib

    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    relative = manifest["golden"][0]["outputs"]["class_logits"]
    values = np.load(bundle_dir / relative)
    np.save(bundle_dir / relative, np.clip(values.astype(np.int16) + 5, -128, 127).astype(values.dtype))
    manifest["sha256"][relative] = hashlib.sha256((bundle_dir / relative).read_bytes()).hexdigest()
    data = (json.dumps(manifest, indent=2) + "\n").encode()
    (bundle_dir / MANIFEST).write_bytes(data)
    (bundle_dir / "manifest.json.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  manifest.json\n")
    problems = verify_bundle(bundle_dir)
    assert len(problems) == 1 and "quantization steps" in problems[0] and relative.split("/")[-1] in problems[0]


def _tfyolo_detections(model_path, image_path, conf):
    from tfyolo.data.images import letterbox, read_image_rgb, to_model_input
    from tfyolo.evaluation.runners import TFLiteRunner
    from tfyolo.ops.nms import NMSConfig, non_max_suppression

    runner = TFLiteRunner(model_path)
    image = read_image_rgb(image_path)
    boxed, info = letterbox(image, runner.input_size)
    boxes, scores = runner.predict(to_model_input(boxed[None]))
    kept, kept_scores, classes = non_max_suppression(
        boxes[0] * runner.input_size, scores[0], NMSConfig(confidence_threshold=conf)
    )
    return info.to_original(kept), kept_scores, classes


def test_reference_infer_matches_tfyolo(bundle_dir, val_images):
    spec = importlib.util.spec_from_file_location("reference_infer", bundle_dir / "reference_infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    detections = module.run(val_images[0], conf=0.01, bundle=bundle_dir)
    boxes, scores, classes = _tfyolo_detections(bundle_dir / "tiny_int8_int8io.tflite", val_images[0], 0.01)
    assert len(detections) == len(scores) > 0
    np.testing.assert_allclose([d["box"] for d in detections], boxes, atol=1e-3)
    np.testing.assert_allclose([d["score"] for d in detections], scores, atol=1e-6)
    assert [d["class_id"] for d in detections] == classes.tolist()


@pytest.mark.large
def test_reference_infer_in_a_fresh_venv_without_tensorflow(bundle_dir, val_images, tmp_path):
    """The device team's setup: a new venv with only numpy + ai-edge-litert + OpenCV (no TensorFlow, no tfyolo)."""
    import importlib.metadata

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pins = [
        f"{name}=={importlib.metadata.version(name)}" for name in ("numpy", "ai-edge-litert", "opencv-python-headless")
    ]
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *pins], check=True, timeout=900)
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import tensorflow"], capture_output=True)
    assert check.returncode != 0  # TensorFlow really is absent
    moved = tmp_path / "handoff"
    shutil.copytree(bundle_dir, moved)
    result = subprocess.run(
        [
            str(venv / "bin" / "python"),
            str(moved / "reference_infer.py"),
            str(val_images[0]),
            "--conf",
            "0.01",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    detections = json.loads(result.stdout)
    boxes, scores, classes = _tfyolo_detections(moved / "tiny_int8_int8io.tflite", val_images[0], 0.01)
    assert len(detections) == len(scores) > 0
    np.testing.assert_allclose([d["box"] for d in detections], boxes, atol=1e-3)
    assert [d["class_id"] for d in detections] == classes.tolist()
