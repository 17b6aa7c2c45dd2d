"""Segmentation scoring on cases small enough to work out by hand: mask assembly (coefficients x prototypes, the
bilinear sampling, the crop to the box, the letterbox undone), polygon labels, and the mask metric as an oracle (a
perfect prediction scores 1.0; a shifted one scores what the IoU arithmetic says), through pycocotools and through
the whole evaluator."""

import cv2
import numpy as np
import pytest

from tfyolo.data.detection_dataset import DetectionDataset
from tfyolo.data.pipeline import evaluation_batches
from tfyolo.errors import DataError
from tfyolo.evaluation.coco_metrics import coco_evaluate
from tfyolo.evaluation.evaluator import evaluate
from tfyolo.evaluation.mask_scoring import MaskScoring, encode_masks
from tfyolo.evaluation.runners import decode_ultralytics, ultralytics_task_outputs
from tfyolo.models.tasks import DETECT, MASK_COEFFICIENTS, MASK_PROTOTYPES, SEGMENT, task_of_outputs
from tfyolo.ops.masks import assemble_masks, bilinear_matrix

# === Mask assembly ===


def step_prototypes():
    """One 4x4 prototype (a 16 px input at stride 4): +1 in its two left columns, -1 in its two right ones."""
    prototypes = np.full((4, 4, 1), -1.0, np.float32)
    prototypes[:, :2] = 1.0
    return prototypes


def test_bilinear_matrix_is_pytorch_align_corners_false_with_clamped_ends():
    # Upsampling 4 -> 16: output pixel j samples (j + 0.5) / 4 - 0.5; j = 0, 1 fall before pixel 0 (clamped).
    weights = bilinear_matrix((np.arange(16) + 0.5) / 4 - 0.5, 4)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(weights[0], [1, 0, 0, 0])
    np.testing.assert_allclose(weights[2], [0.875, 0.125, 0, 0])  # position 0.125
    np.testing.assert_allclose(weights[15], [0, 0, 0, 1])


def test_a_step_prototype_gives_the_mask_the_arithmetic_says_in_the_input_frame():
    """The logit crosses 0 halfway between prototype columns 1 and 2: (j + 0.5) / 4 - 0.5 = 1.5 at j = 7.5, so
    columns 0-7 are in; the box [2.3, 1, 6, 15) keeps columns 3-5 (x1 <= col < x2) and rows 1-14."""
    masks = assemble_masks(step_prototypes(), [[1.0]], [[0, 0, 16, 16]], (16, 16), 16)
    assert masks.shape == (1, 16, 16) and masks[0].all(axis=0)[:8].all() and not masks[0][:, 8:].any()
    masks = assemble_masks(step_prototypes(), [[1.0], [-1.0]], [[2.3, 1, 6, 15], [0, 0, 16, 16]], (16, 16), 16)
    expected = np.zeros((16, 16), bool)
    expected[1:15, 3:6] = True
    np.testing.assert_array_equal(masks[0], expected)
    assert masks[1][:, 8:].all() and not masks[1][:, :8].any()  # a negated coefficient inverts the mask


def test_masks_in_the_original_frame_undo_the_letterbox():
    """A 32 px wide original shrunk by 0.5 into the 16 px input with 2 px of padding on top: column j samples input
    x = (j + 0.5) / 2, so the edge at input 8 falls at j = 15.5 (columns 0-15); rows are the padding undone."""
    prototypes = step_prototypes()
    masks = assemble_masks(prototypes, [[1.0]], [[0, 0, 32, 24]], (24, 32), 16, scale=0.5, pad=(0.0, 2.0))
    assert masks[0][:, :16].all() and not masks[0][:, 16:].any()
    assert not assemble_masks(prototypes, np.zeros((0, 1)), np.zeros((0, 4)), (24, 32), 16).any()


# === Polygon labels ===


def write_split(root, images):
    """A tiny split: {stem: (height, width, label text)} as gray PNGs and label files, and its data.yaml."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for stem, (height, width, labels) in images.items():
        cv2.imwrite(str(root / "images" / f"{stem}.png"), np.full((height, width, 3), 90, np.uint8))
        (root / "labels" / f"{stem}.txt").write_text(labels)
    (root / "data.yaml").write_text("path: .\ntrain: images\nval: images\nnames:\n  0: thing\n  1: other\n")
    return root / "data.yaml"


def test_polygon_labels_give_their_extent_as_box(tmp_path):
    data = write_split(tmp_path, {"a": (40, 80, "1 0.1 0.2 0.5 0.25 0.3 0.6\n0 0.5 0.5 0.2 0.2\n")})
    dataset = DetectionDataset.from_data_yaml(data, "val")
    sample = dataset.samples[0]
    assert dataset.has_polygons and dataset.stats.polygons == 1
    np.testing.assert_allclose(sample.boxes, [[0.1, 0.2, 0.5, 0.6], [0.4, 0.4, 0.6, 0.6]], atol=1e-6)
    np.testing.assert_allclose(sample.polygons[0], [[0.1, 0.2], [0.5, 0.25], [0.3, 0.6]], atol=1e-6)
    assert sample.polygons[1] is None
    boxes_only = write_split(tmp_path / "boxes", {"b": (40, 80, "0 0.5 0.5 0.2 0.2\n")})
    assert DetectionDataset.from_data_yaml(boxes_only, "val").samples[0].polygons is None


@pytest.mark.parametrize(
    "line, message",
    [("0 0.1 0.2 0.5 0.25 0.3", r"a\.txt:1: expected 5 fields"), ("0 0.1 0.2 0.5 0.25 0.3 0.6 0.7", "found 7")],
)
def test_malformed_polygon_lines_are_refused_naming_the_line(tmp_path, line, message):
    data = write_split(tmp_path, {"a": (40, 80, line + "\n")})
    with pytest.raises(DataError, match=message):
        DetectionDataset.from_data_yaml(data, "val")


# === The mask metric as an oracle, through pycocotools ===


def rectangle_split(tmp_path):
    """Two images (120x200 and 90x60, H x W), rectangles as polygons: corners on whole pixels."""
    rectangles = {"a": (120, 200, [(20, 30, 120, 90), (130, 10, 190, 110)]), "b": (90, 60, [(10, 5, 50, 80)])}
    images = {}
    for stem, (height, width, boxes) in rectangles.items():
        lines = []
        for x1, y1, x2, y2 in boxes:
            corners = (np.array([x1, y1, x2, y1, x2, y2, x1, y2], np.float64).reshape(4, 2) / [width, height]).ravel()
            lines.append("0 " + " ".join(f"{value:.6f}" for value in corners))
        images[stem] = (height, width, "\n".join(lines) + "\n")
    return DetectionDataset.from_data_yaml(write_split(tmp_path, images), "val"), rectangles


def shifted_rectangle_masks(rectangles, shift):
    """{image index: (masks, boxes)}: each rectangle's mask as whole pixels, moved right by `shift` pixels."""
    found = {}
    for index, (height, width, boxes) in enumerate(rectangles.values()):
        masks = np.zeros((len(boxes), height, width), bool)
        for mask, (x1, y1, x2, y2) in zip(masks, boxes):
            mask[y1:y2, x1 + shift : x2 + shift] = True
        found[index] = masks
    return found


def mask_results(found):
    return [
        {"image_id": index, "category_id": 0, "segmentation": rle, "score": 0.9}
        for index, masks in found.items()
        for rle in encode_masks(masks)
    ]


SHIFTED_AP = (5 + 2 * 67 / 101 + 34 / 101) / 10


def test_a_perfect_mask_scores_one_and_a_shifted_one_what_its_iou_says(tmp_path):
    """pycocotools rasterizes the ground-truth rectangles to the same pixels a whole-pixel mask has (IoU 1). Moving
    every mask 6 px right: IoU (w - 6) / (w + 6) = 0.887 (w 100), 0.818 (w 60), 0.739 (w 40), so of COCO's
    thresholds 0.50:0.05:0.95 they meet 8, 7 and 5. Equal scores keep the detections in order (w 100, w 60, w 40),
    so where the first k of 3 match, AP is the share of COCO's 101 recall points 0, 0.01, ... up to k / 3: 1,
    67 / 101, 34 / 101 or 0. AP50-95 = (5 + 2 * 67 / 101 + 34 / 101) / 10 = 0.6663; AP50 = 1."""
    dataset, rectangles = rectangle_split(tmp_path)
    image_sizes = {index: (height, width) for index, (height, width, _) in enumerate(rectangles.values())}
    ground_truth = MaskScoring().ground_truth(dataset, image_sizes)
    assert [a["area"] for a in ground_truth["annotations"]] == [6000.0, 6000.0, 3000.0]
    perfect = coco_evaluate(ground_truth, mask_results(shifted_rectangle_masks(rectangles, 0)), dataset.names, "segm")
    assert perfect["map50_95"] == pytest.approx(1.0) and perfect["map50"] == pytest.approx(1.0)
    shifted = coco_evaluate(ground_truth, mask_results(shifted_rectangle_masks(rectangles, 6)), dataset.names, "segm")
    assert shifted["map50_95"] == pytest.approx(SHIFTED_AP, abs=1e-9)
    assert shifted["map50"] == pytest.approx(1.0)


def test_a_split_without_polygons_is_refused_for_masks(tmp_path):
    data = write_split(tmp_path, {"b": (40, 80, "0 0.5 0.5 0.2 0.2\n")})
    with pytest.raises(DataError, match="no polygons"):
        MaskScoring().check_dataset(DetectionDataset.from_data_yaml(data, "val"))


# === The whole evaluator on a stand-in segmentation model ===


class RectangleSegmenter:
    """A stand-in segmentation model that predicts each ground-truth rectangle, moved right by `shift` original
    pixels: its box, and a mask that is the whole box (one prototype of constant +1, coefficient 1). It follows the
    evaluator's batches to know the images, as tests/test_evaluator_oracles.py's runner does."""

    layout, postprocess, description, task = "test", "nms", "rectangles", SEGMENT

    def __init__(self, dataset, rectangles, size, shift=0):
        self.dataset, self.rectangles, self.input_size, self.shift = dataset, list(rectangles.values()), size, shift
        self.num_classes = dataset.num_classes
        self._batches = evaluation_batches(dataset, size, 8)

    def predict_raw(self, batch):
        chunk, _, infos = next(self._batches)
        anchors = 8
        boxes = np.zeros((len(chunk), anchors, 4), np.float64)  # float32 would move edges by 1e-5 px
        scores = np.zeros((len(chunk), anchors, self.num_classes), np.float32)
        for position, (index, info) in enumerate(zip(chunk, infos)):
            for anchor, (x1, y1, x2, y2) in enumerate(self.rectangles[index][2]):
                original = np.array([x1 + self.shift, y1, x2 + self.shift, y2], np.float64)
                boxes[position, anchor] = (original * info.scale + [info.pad_x, info.pad_y] * 2) / self.input_size
                scores[position, anchor, 0] = 0.9
        side = self.input_size // 4
        return {
            "boxes": boxes,
            "scores": scores,
            MASK_COEFFICIENTS: np.ones((len(chunk), anchors, 1), np.float32),
            MASK_PROTOTYPES: np.ones((len(chunk), side, side, 1), np.float32),
        }

    def decode(self, raw):
        return raw["boxes"], raw["scores"]

    def task_outputs(self, raw):
        return {name: raw[name] for name in SEGMENT.inference_outputs}


def test_the_evaluator_scores_a_perfect_segmenter_one_and_a_shifted_one_as_the_arithmetic(tmp_path):
    """Box and mask are the same rectangle here, so both mAPs follow the shifted-mask arithmetic above (the box
    crossing the letterbox twice lands a rounding error off whole pixels, which the crop tolerates)."""
    dataset, rectangles = rectangle_split(tmp_path)
    perfect = evaluate(RectangleSegmenter(dataset, rectangles, 64), dataset)
    assert perfect.metrics["map50_95"] == pytest.approx(1.0)
    assert perfect.task_metrics["mask"]["map50_95"] == pytest.approx(1.0)
    shifted = evaluate(RectangleSegmenter(dataset, rectangles, 64, shift=6), dataset)
    assert shifted.task_metrics["mask"]["map50_95"] == pytest.approx(SHIFTED_AP, abs=1e-9)
    assert shifted.metrics["map50_95"] == pytest.approx(SHIFTED_AP, abs=1e-9)


# === Tasks and Ultralytics' segmentation layout ===


def test_a_task_is_recognized_by_its_outputs():
    assert task_of_outputs(["box_distribution", "class_logits"]) is DETECT
    assert task_of_outputs(["box_distribution", "class_logits", MASK_COEFFICIENTS, MASK_PROTOTYPES]) is SEGMENT
    assert SEGMENT.coco_iou_types == ("bbox", "segm") and DETECT.coco_iou_types == ("bbox",)


def test_ultralytics_segment_rows_split_into_scores_and_coefficients():
    """output0 (1, 4 + nc + nm, N): boxes, nc scores, nm coefficients; output1 the prototypes, NCHW."""
    rng = np.random.default_rng(0)
    rows, prototypes = rng.random((1, 4 + 2 + 3, 5), np.float32), rng.random((1, 3, 4, 4), np.float32)
    raw = {"output0": rows, "output1": prototypes}
    _, scores = decode_ultralytics(raw, 16, normalized=True, num_masks=3)
    np.testing.assert_array_equal(scores, rows[:, 4:6].transpose(0, 2, 1))
    outputs = ultralytics_task_outputs(raw, 3, channels_first=True)
    np.testing.assert_array_equal(outputs[MASK_COEFFICIENTS], rows[:, 6:].transpose(0, 2, 1))
    np.testing.assert_array_equal(outputs[MASK_PROTOTYPES], prototypes.transpose(0, 2, 3, 1))


@pytest.mark.large
def test_keras_savedmodel_and_tflite_segmenters_hand_over_the_same_task_outputs(tmp_path):
    """A tiny YOLO11 segmenter as Keras, as a SavedModel (`tfyolo.export`) and as fp32 TFLite (tfyolo's converter,
    outputs named in its signature): each runner knows the task and gives the coefficients and prototypes."""
    from tests.test_segment import segmenter
    from tfyolo.evaluation.runners import KerasRunner, SavedModelRunner, TFLiteRunner
    from tfyolo.export import export_saved_model
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.recipes_dir import resolve_recipe

    model = segmenter("yolo11")
    images = np.random.default_rng(0).random((2, 64, 64, 3)).astype(np.float32)
    keras = KerasRunner(model)
    expected = keras.task_outputs(keras.predict_raw(images))
    assert keras.task is SEGMENT and expected[MASK_PROTOTYPES].shape == (2, 16, 16, 32)
    export_saved_model(model, tmp_path / "saved")
    (tmp_path / "model.tflite").write_bytes(convert(model, resolve_recipe("fp32")))
    for runner in (SavedModelRunner(tmp_path / "saved"), TFLiteRunner(tmp_path / "model.tflite")):
        assert runner.task is SEGMENT and runner.layout == "tfyolo"
        outputs = runner.task_outputs(runner.predict_raw(images))
        for name, values in expected.items():
            np.testing.assert_allclose(outputs[name], values, atol=1e-4, err_msg=f"{type(runner).__name__} {name}")
