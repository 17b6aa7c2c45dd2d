"""Segmentation evaluation against Ultralytics' own numbers (../shared; each SOURCE.md beside the files): the masks
tfyolo assembles from ONNX Runtime's golden outputs against the masks Ultralytics decoded from them, and tfyolo-eval
on the shipped models (large)."""

import numpy as np
import pytest

from tests.conftest import SHARED, shared_dataset
from tfyolo.evaluation.runners import decode_ultralytics, ultralytics_task_outputs
from tfyolo.models.tasks import MASK_COEFFICIENTS, MASK_PROTOTYPES
from tfyolo.ops.masks import assemble_masks
from tfyolo.ops.nms import NMSConfig, nms_anchors

SIZE = 320


def golden(family):
    path = SHARED / "weights" / f"ultralytics_{family}_pennfudan_seg" / "golden_io.npz"
    if not path.is_file():
        pytest.skip(f"needs ../shared/weights/ultralytics_{family}_pennfudan_seg beside the project (present in CI)")
    return np.load(path)


def mask_iou(a, b):
    union = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / union if union else 1.0


def tfyolo_masks(output0, output1):
    """tfyolo's selection and assembly on one image's ONNX outputs at predict's confidence 0.25: (boxes px, masks)."""
    raw = {"output0": output0[None], "output1": output1[None]}
    boxes, scores = decode_ultralytics(raw, SIZE, normalized=False, num_masks=32)
    anchors, _, _ = nms_anchors(boxes[0] * SIZE, scores[0], NMSConfig(confidence_threshold=0.25))
    task = ultralytics_task_outputs(raw, 32, channels_first=True)
    kept = boxes[0][anchors] * SIZE
    masks = assemble_masks(task[MASK_PROTOTYPES][0], task[MASK_COEFFICIENTS][0][anchors], kept, (SIZE, SIZE), SIZE)
    return kept, masks


@pytest.mark.parametrize(
    "family, suffix", [("yolo11n", ""), ("yolov8n", ""), ("yolo26n", "_one2many"), ("yolo26n", "")]
)
def test_masks_equal_ultralytics_decoded_masks(family, suffix):
    """In the input frame tfyolo's assembly is Ultralytics' `process_mask(upsample=True)`: from their own detections
    (`pred_det`: box, 32 coefficients) the masks equal `pred_masks` up to pixels whose logit rounds across 0, and
    through tfyolo's decode and NMS (one-to-many) the same detections come out. Measured: see docs/evaluation.md."""
    data = golden(family)
    prototypes = data["output1"].transpose(0, 2, 3, 1)
    for image, count in enumerate(data[f"pred_n{suffix}"]):
        rows, expected = data[f"pred_det{suffix}"][image][:count], data[f"pred_masks{suffix}"][image][:count]
        masks = assemble_masks(prototypes[image], rows[:, 6:], rows[:, :4], (SIZE, SIZE), SIZE)
        differing = (masks != expected.astype(bool)).sum(axis=(1, 2))
        assert differing.max() <= 2, (image, differing)
        if suffix == "" and family == "yolo26n":
            continue  # the end-to-end rows are top-k output, not a one-to-many head to run NMS on
        boxes, found = tfyolo_masks(data[f"output0{suffix}"][image], data["output1"][image])
        assert len(boxes) == count
        np.testing.assert_allclose(boxes, rows[:, :4], atol=1e-3)
        assert min(mask_iou(a, b) for a, b in zip(found, expected.astype(bool))) > 0.999


def evaluate_file(model, data):
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.evaluation.model_evaluation import evaluate_model
    from tfyolo.jobs.model_runner import open_runner

    runner = open_runner(model)
    report, _, _ = evaluate_model(runner, DetectionDataset.from_data_yaml(data, "val"), "val")
    return runner, report


# tfyolo-eval of Ultralytics' int8 exports on pennfudan_seg val, (box, mask) mAP50-95, measured (docs/evaluation.md);
# Ultralytics' own val of the same files: YOLO11n 0.3491 / 0.2945, YOLOv8n 0.3828 / 0.3197, YOLO26n 0.3048 / 0.2620.
INT8_SCORES = {"yolo11n": (0.3631, 0.2902), "yolov8n": (0.3902, 0.3038), "yolo26n": (0.3161, 0.2574)}


@pytest.mark.large
@pytest.mark.parametrize("family", sorted(INT8_SCORES))
def test_ultralytics_int8_segment_exports_are_scored_for_boxes_and_masks(family, pennfudan_seg):
    """The LiteRT int8 exports (NCHW in, output0 (1, 37, 2100) with normalized boxes, output1 (1, 32, 80, 80)):
    recognized as one class plus 32 coefficients and scored as measured."""
    folder = SHARED / "weights" / f"ultralytics_{family}_pennfudan_seg"
    runner, report = evaluate_file(next(folder.glob("*_int8.tflite")), pennfudan_seg)
    assert (runner.layout, runner.task.name, runner.num_classes, runner.normalized_boxes) == (
        "ultralytics",
        "segment",
        1,
        True,
    )
    assert report["task"] == "segment"
    assert (report["map50_95"], report["mask"]["map50_95"]) == pytest.approx(INT8_SCORES[family], abs=2e-3)


@pytest.mark.large
def test_the_imported_yolo11n_segmenter_scores_as_measured(pennfudan_seg):
    """Box 0.3919, mask 0.3140 (Ultralytics' square fp32 val: 0.3870 / 0.3247; the conventions differ,
    docs/evaluation.md)."""
    _, report = evaluate_file(SHARED / "weights" / "ultralytics_yolo11n_pennfudan_seg" / "best.pt", pennfudan_seg)
    assert (report["map50_95"], report["mask"]["map50_95"]) == pytest.approx((0.3919, 0.3140), abs=2e-3)


def test_the_bundle_s_reference_infer_gives_the_masks_tfyolo_eval_scores(tmp_path):
    """Two implementations of the mask assembly, one in the library (what tfyolo-eval scores) and one in the
    standalone reference_infer.py a device team runs: on Ultralytics' int8 YOLO11n-seg export (its NCHW prototypes,
    its coefficients at the end of output0) and a PennFudan image, the same detections with the same masks, read
    back from reference_infer's RLE by pycocotools."""
    from pycocotools import mask as mask_utils

    from tests.bundles import bundle_with_reference
    from tfyolo.data.images import letterbox, read_image_rgb, to_model_input
    from tfyolo.evaluation.mask_scoring import MaskScoring
    from tfyolo.evaluation.runners import TFLiteRunner
    from tfyolo.ops.topk import select_anchors

    golden("yolo11n")
    model = next((SHARED / "weights" / "ultralytics_yolo11n_pennfudan_seg").glob("*_int8.tflite"))
    image = shared_dataset("pennfudan") / "images" / "FudanPed00001.png"
    detections = bundle_with_reference(model, [image], tmp_path).run(image, conf=0.25, bundle=tmp_path)

    runner = TFLiteRunner(model)
    boxed, info = letterbox(read_image_rgb(image), runner.input_size)
    raw = runner.predict_raw(to_model_input(boxed[None]))
    boxes, scores = runner.decode(raw)
    boxes = boxes[0] * runner.input_size
    anchors, kept_scores, kept_classes = select_anchors("nms")(boxes, scores[0], NMSConfig(confidence_threshold=0.25))
    selected = (anchors, kept_scores, kept_classes, info.to_original(boxes[anchors]))
    expected = MaskScoring().detections(0, selected, runner.task_outputs(raw), 0, info, runner.input_size)

    assert len(detections) == len(expected) >= 2
    np.testing.assert_allclose([d["score"] for d in detections], kept_scores, atol=1e-6)
    height, width = info.original_height, info.original_width
    for found, wanted in zip(detections, expected):
        mask = mask_utils.decode(mask_utils.frPyObjects(found["mask"], height, width))
        assert mask.sum() == found["mask_pixels"] > 0
        np.testing.assert_array_equal(mask, mask_utils.decode(wanted["segmentation"]))
