"""A converted model's outputs are told apart by name, for every class count (64 is the one that equals
4 * reg_max, where both outputs are (1, anchors, 64)): evaluation, bundle, reference_infer.py and bench agree."""

import importlib.util

import cv2
import numpy as np
import pytest

from tfyolo.models.yolo_detector import BOX_OUTPUT, CLASS_OUTPUT

CLASS_COUNTS = (1, 3, 63, 64, 65, 80, 100)


def _dataset(folder, num_classes):
    """Two 64 px images with one labelled box each (class ids at both ends of the range)."""
    from tfyolo.data.detection_dataset import DetectionDataset

    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    rng = np.random.default_rng(num_classes)
    for index, class_id in enumerate((0, num_classes - 1)):
        cv2.imwrite(str(folder / "images" / f"im{index}.png"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        (folder / "labels" / f"im{index}.txt").write_text(f"{class_id} 0.5 0.5 0.4 0.3\n")
    names = [f"class_{i}" for i in range(num_classes)]
    (folder / "data.yaml").write_text(f"path: {folder}\ntrain: images\nval: images\nnames: {names}\n")
    return DetectionDataset.from_data_yaml(folder / "data.yaml", "val"), names


@pytest.fixture(scope="module", params=CLASS_COUNTS, ids=[f"nc{n}" for n in CLASS_COUNTS])
def converted(request, tmp_path_factory):
    from tfyolo.metadata import embed_metadata
    from tfyolo.models.model_config import ModelConfig
    from tfyolo.models.yolo_detector import build_yolo_detector
    from tfyolo.quantization.artifact import artifact_metadata
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.recipe import Recipe

    num_classes = request.param
    folder = tmp_path_factory.mktemp(f"nc{num_classes}")
    dataset, names = _dataset(folder / "data", num_classes)
    model = build_yolo_detector(ModelConfig(num_classes=num_classes, input_size=64))
    # YOLOv8's prior puts every initial class score near 1e-5; zero biases give scores around 0.5, so the NMS
    # and the box decode below have detections to compare.
    for layer in model.layers:
        if layer.name.endswith("cls_pred"):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, np.zeros_like(bias)])
    recipe = Recipe(name="fp32", mode="fp32")
    metadata = artifact_metadata({"names": names}, recipe, None, 64, num_classes, "test")
    path = folder / f"nc{num_classes}_fp32.tflite"
    path.write_bytes(embed_metadata(convert(model, recipe), metadata))
    return num_classes, model, path, dataset, names


def test_runner_reads_class_count_and_reg_max(converted):
    from tfyolo.evaluation.runners import TFLiteRunner

    num_classes, _, path, _, names = converted
    runner = TFLiteRunner(path)
    assert (runner.layout, runner.num_classes, runner.reg_max) == ("tfyolo", num_classes, 16)
    assert runner.outputs[BOX_OUTPUT]["name"] == BOX_OUTPUT and runner.outputs[CLASS_OUTPUT]["name"] == CLASS_OUTPUT
    assert runner.names == names


def test_evaluation_compares_each_output_with_its_own_reference(converted):
    from tfyolo.evaluation.model_evaluation import evaluate_model
    from tfyolo.evaluation.runners import KerasRunner, TFLiteRunner

    num_classes, model, path, dataset, _ = converted
    report, _, _ = evaluate_model(TFLiteRunner(path), dataset, "val", KerasRunner(model))
    assert set(report["output_errors"]) == {BOX_OUTPUT, CLASS_OUTPUT}
    assert len(report["per_class"]) == num_classes
    # The same float32 arithmetic in another order: swapped outputs would be uncorrelated (cosine far below 1).
    for stats in report["output_errors"].values():
        assert stats["cosine_similarity"] > 0.9999


def test_bundle_reference_infer_and_bench_agree(converted, tmp_path):
    from tfyolo.benchmark import benchmark_models
    from tfyolo.bundle import make_bundle, verify_bundle
    from tfyolo.data.images import letterbox, read_image_rgb, to_model_input
    from tfyolo.evaluation.runners import KerasRunner
    from tfyolo.ops.nms import NMSConfig, non_max_suppression

    num_classes, model, path, dataset, names = converted
    image_path = dataset.samples[0].image_path
    for relative, data in make_bundle(path, [image_path]).items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(data)
    import json

    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["names"] == names and manifest["decode"]["reg_max"] == 16
    assert (tmp_path / "labels.txt").read_text().split() == names
    assert verify_bundle(tmp_path) == []

    spec = importlib.util.spec_from_file_location("reference_infer", tmp_path / "reference_infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    detections = module.run(image_path, conf=0.2, bundle=tmp_path)
    # The Keras model is the independent side: same letterbox, its own outputs, tfyolo's decode and NMS.
    boxed, info = letterbox(read_image_rgb(image_path), 64)
    boxes, scores = KerasRunner(model).predict(to_model_input(boxed[None]))
    kept, kept_scores, kept_classes = non_max_suppression(boxes[0] * 64, scores[0], NMSConfig(0.2, 0.7, 300))
    assert len(detections) == len(kept_scores) > 0
    np.testing.assert_allclose([d["score"] for d in detections], kept_scores, atol=1e-4)
    np.testing.assert_allclose([d["box"] for d in detections], info.to_original(kept).reshape(-1, 4), atol=1e-2)

    detector = benchmark_models([path], threads=[1], warmup=1, runs=2)["models"][0]["detector"]
    assert (detector["num_classes"], detector["reg_max"], detector["layout"]) == (num_classes, 16, "tfyolo")
