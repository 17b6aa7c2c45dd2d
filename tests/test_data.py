from pathlib import Path

import cv2
import numpy as np
import pytest

from tfyolo.data.data_config import load_data_config
from tfyolo.data.detection_dataset import DetectionDataset, label_path_for
from tfyolo.data.images import letterbox, read_image_rgb
from tfyolo.data.synthetic import synthetic_sample
from tfyolo.errors import DataError


def make_dataset(root, labels, names=("a", "b"), image=None, yaml_extra=""):
    """A one-image YOLO dataset in `root`; `labels` is the text of its label file (None: no label file)."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    image = np.full((40, 60, 3), 200, np.uint8) if image is None else image
    cv2.imwrite(str(root / "images" / "one.png"), image)
    if labels is not None:
        (root / "labels" / "one.txt").write_text(labels)
    names_yaml = "[" + ", ".join(names) + "]"
    yaml_path = root / "data.yaml"
    yaml_path.write_text(f"path: .\ntrain: images\nval: images\nnames: {names_yaml}\n{yaml_extra}")
    return yaml_path


def test_reads_boxes_and_converts_to_xyxy(tmp_path):
    yaml_path = make_dataset(tmp_path, "1 0.5 0.5 0.2 0.4\n")
    dataset = DetectionDataset.from_data_yaml(yaml_path, "train")
    np.testing.assert_array_equal(dataset.samples[0].class_ids, [1])
    np.testing.assert_allclose(dataset.samples[0].boxes, [[0.4, 0.3, 0.6, 0.7]], atol=1e-6)


@pytest.mark.parametrize(
    "labels, fragment",
    [
        ("0 0.5 0.5 0.2\n", r"one.txt:1: expected 5 fields"),
        ("0 0.5 0.5 0.2 0.4\n2 0.5 0.5 0.2 0.2\n", r"one.txt:2: class id 2 is not an integer in 0..1"),
        ("0 0.5 0.5 0.2 x\n", r"one.txt:1: fields must be numbers"),
        ("0 1.2 0.5 0.2 0.2\n", r"one.txt:1: box .* reaches outside \[0, 1\]"),
        ("0 0.5 0.5 -0.2 0.2\n", r"one.txt:1: box .* reaches outside"),
    ],
)
def test_malformed_labels_name_file_and_line(tmp_path, labels, fragment):
    yaml_path = make_dataset(tmp_path, labels)
    with pytest.raises(DataError, match=fragment):
        DetectionDataset.from_data_yaml(yaml_path, "train")


def test_small_overshoot_is_clipped_and_counted(tmp_path):
    yaml_path = make_dataset(tmp_path, "0 0.5 0.5 1.005 0.5\n")
    dataset = DetectionDataset.from_data_yaml(yaml_path, "train")
    assert dataset.stats.clipped_boxes == 1
    assert dataset.samples[0].boxes.min() >= 0 and dataset.samples[0].boxes.max() <= 1


def test_missing_label_file_is_a_counted_background_image(tmp_path):
    yaml_path = make_dataset(tmp_path, "0 0.5 0.5 0.2 0.4\n")
    cv2.imwrite(str(tmp_path / "images" / "empty_street.png"), np.full((40, 60, 3), 90, np.uint8))
    dataset = DetectionDataset.from_data_yaml(yaml_path, "train")
    assert dataset.stats.missing_label_files == 1 and dataset.stats.background_images == 1
    assert "no label file" in dataset.stats.warnings()[0]


@pytest.mark.parametrize(
    "yaml_text, fragment",
    [
        ("train: images\nval: images\nnames: [a]\nepochs: 3\n", r"unknown key\(s\) \['epochs'\]"),
        ("train: images\nnames: [a]\n", r"missing required key\(s\) \['val'\]"),
        ("train: images\nval: images\nnames: [a, b]\nnc: 3\n", "nc is 3 but 'names' lists 2"),
        ("train: images\nval: images\nnames: {0: a, 2: b}\n", "without gaps"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_bad_data_yaml(tmp_path, yaml_text, fragment):
    path = tmp_path / "data.yaml"
    path.write_text(yaml_text)
    with pytest.raises(DataError, match=fragment):
        load_data_config(path)


def test_missing_split_folder_and_empty_split(tmp_path):
    yaml_path = make_dataset(tmp_path, "")
    with pytest.raises(DataError, match="no 'test' split"):
        DetectionDataset.from_data_yaml(yaml_path, "test")
    (tmp_path / "data2.yaml").write_text("train: nowhere\nval: images\nnames: [a]\n")
    with pytest.raises(DataError, match="split source not found"):
        DetectionDataset.from_data_yaml(tmp_path / "data2.yaml", "train")
    (tmp_path / "empty").mkdir()
    (tmp_path / "data3.yaml").write_text("train: empty\nval: images\nnames: [a]\n")
    with pytest.raises(DataError, match="no images found"):
        DetectionDataset.from_data_yaml(tmp_path / "data3.yaml", "train")


def test_names_as_dict_and_txt_lists(tmp_path):
    yaml_path = make_dataset(tmp_path, "0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "train.txt").write_text("images/one.png\n")
    yaml_path.write_text("path: .\ntrain: train.txt\nval: images\nnames:\n  0: person\n")
    dataset = DetectionDataset.from_data_yaml(yaml_path, "train")
    assert dataset.names == ("person",) and len(dataset) == 1


def test_image_reading_converts_gray_and_rgba_and_refuses_corrupt(tmp_path):
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), np.full((8, 9), 77, np.uint8))
    assert read_image_rgb(gray).shape == (8, 9, 3)
    rgba = tmp_path / "rgba.png"
    cv2.imwrite(str(rgba), np.full((8, 9, 4), 50, np.uint8))
    assert read_image_rgb(rgba).shape == (8, 9, 3)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match="corrupt.jpg: cannot decode"):
        read_image_rgb(corrupt)
    with pytest.raises(DataError, match="not found"):
        read_image_rgb(tmp_path / "absent.png")


def test_exif_rotated_jpeg_is_read_upright_everywhere(tmp_path):
    from PIL import Image

    # 40 rows x 80 columns, a red band in the 20 leftmost columns; EXIF orientation 6 says "rotate 90 degrees
    # clockwise to display", which puts the band along the top of an 80 x 40 upright image.
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    image = read_image_rgb(path)
    assert image.shape == (80, 40, 3)
    assert image[:18, :, 0].min() > 200 and image[:18, :, 1:].max() < 60
    assert image[24:, :, 0].max() < 60
    # The bundle's standalone reader (cv2.imread, IMREAD_COLOR) sees the same pixels.
    np.testing.assert_array_equal(image, cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))


def test_bgr_is_turned_into_rgb(tmp_path):
    path = tmp_path / "red.png"
    cv2.imwrite(str(path), np.dstack([np.zeros((4, 4)), np.zeros((4, 4)), np.full((4, 4), 255)]).astype(np.uint8))
    np.testing.assert_array_equal(read_image_rgb(path)[0, 0], [255, 0, 0])


def test_letterbox_maps_boxes_back():
    image = np.zeros((100, 200, 3), np.uint8)
    boxed, info = letterbox(image, 64)
    # 200 -> 64 (scale 0.32), 100 -> 32, padded by 16 rows above and below, gray 114.
    assert boxed.shape == (64, 64, 3) and info.scale == pytest.approx(0.32) and (info.pad_x, info.pad_y) == (0, 16)
    assert boxed[0, 0, 0] == 114
    original = np.array([[20, 10, 120, 90]], float)
    in_input = original * info.scale + [info.pad_x, info.pad_y, info.pad_x, info.pad_y]
    np.testing.assert_allclose(info.to_original(in_input), original, atol=1e-9)


def test_label_path_rule():
    assert label_path_for(Path("/d/images/train/a.jpg")) == Path("/d/labels/train/a.txt")


def test_synthetic_is_deterministic_and_labels_are_valid():
    image_a, classes_a, boxes_a = synthetic_sample(7, 3, 96, 3)
    image_b, classes_b, boxes_b = synthetic_sample(7, 3, 96, 3)
    np.testing.assert_array_equal(image_a, image_b)
    np.testing.assert_array_equal(classes_a, classes_b)
    assert image_a.shape == (96, 96, 3) and len(classes_a) >= 1
    assert boxes_a.min() >= 0 and boxes_a.max() <= 1 and np.all(boxes_a[:, 2:] > boxes_a[:, :2])
    assert not np.array_equal(synthetic_sample(8, 3, 96, 3)[0], image_a)


def test_pennfudan_and_coco128_read(tmp_path):
    from tests.conftest import shared_dataset

    penn = DetectionDataset.from_data_yaml(shared_dataset("pennfudan") / "data.yaml", "train")
    assert (len(penn), penn.stats.boxes, penn.names) == (119, 308, ("person",))
    coco = shared_dataset("coco128")
    from_yolo = DetectionDataset.from_data_yaml(coco / "data.yaml", "val")
    from_json = DetectionDataset.from_coco_json(coco / "annotations/instances_train2017_first128.json", coco / "images")
    assert len(from_yolo) == len(from_json) == 128
    # 939 JSON boxes = 929 YOLO boxes + 10 crowd regions, which YOLO labels leave out.
    assert (from_yolo.stats.boxes, from_json.stats.boxes) == (929, 939)
    assert sum(int(sample.crowd.sum()) for sample in from_json.samples) == 10
    assert from_yolo.names == from_json.names
