"""A detector built by hand, whose accuracy is known before it runs: the scoring fixture of the fast suite.

Its data: 64 px black images holding 1-3 white squares of 16 px, each filling one cell of the stride-16 grid.
Its model: a flat graph of plain Keras layers with tfyolo's two outputs. The class logit of an anchor is
20 * (mean brightness of its cell) - 10, only on the stride-16 level; every anchor there predicts the distances
(0.5, 0.5, 0.5, 0.5) grid units (DFL logits with half the mass on bins 0 and 1), i.e. exactly its own cell. So it
finds every square with score sigmoid(10) and IoU 1: mAP50-95 = 1.0 in float, and whatever quantization loses
shows up in the numbers.
"""

import json

import cv2
import numpy as np

from tfyolo.compat import keras
from tfyolo.models.yolo_detector import BOX_OUTPUT, CLASS_OUTPUT

SIZE, CELL, REG_MAX = 64, 16, 16


def write_squares_dataset(folder, train=12, val=6, seed=0):
    """Writes folder/{images,labels}/{train,val} and folder/data.yaml; returns the data.yaml path."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        (folder / "images" / split).mkdir(parents=True, exist_ok=True)
        (folder / "labels" / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image = np.zeros((SIZE, SIZE, 3), np.uint8)
            cells = rng.choice(16, size=rng.integers(1, 4), replace=False)
            lines = []
            for cell in cells:
                row, column = divmod(int(cell), SIZE // CELL)
                image[row * CELL : (row + 1) * CELL, column * CELL : (column + 1) * CELL] = 255
                centre_x, centre_y = (column + 0.5) * CELL / SIZE, (row + 0.5) * CELL / SIZE
                lines.append(f"0 {centre_x} {centre_y} {CELL / SIZE} {CELL / SIZE}")
            cv2.imwrite(str(folder / "images" / split / f"{split}_{index:02d}.png"), image)
            (folder / "labels" / split / f"{split}_{index:02d}.txt").write_text("\n".join(lines) + "\n")
    data = folder / "data.yaml"
    data.write_text(f"path: {folder}\ntrain: images/train\nval: images/val\nnames: ['square']\n")
    return data


def build_square_detector(side=0.5, slope=0.01):
    """side: the distance every anchor predicts on each side, in grid units (0.5 is exactly its cell).
    slope: the weight of the convolutions whose output is a constant (every box bin, the class logits off the
    stride-16 level). Adding `slope` x the cell's brightness to every bin of a side leaves its softmax, so the box,
    unchanged, and moves an off-level class logit from -30 by at most 0.01; a weight of exactly 0 is a kernel that
    ai-edge-quantizer cannot scale (its int32 bias overflows)."""
    images = keras.Input((SIZE, SIZE, 3), name="images")
    gray = keras.layers.Conv2D(1, 1, use_bias=False, name="gray")(images)
    box_levels, class_levels = [], []
    for stride in (8, 16, 32):
        # The mean of each cell: a stride x stride convolution with weights 1 / stride^2 (average pooling made of a
        # layer tfyolo's model files may hold).
        pooled = keras.layers.Conv2D(1, stride, strides=stride, use_bias=False, name=f"cells{stride}")(gray)
        cells = (SIZE // stride) ** 2
        box = keras.layers.Conv2D(4 * REG_MAX, 1, name=f"box{stride}")(pooled)
        score = keras.layers.Conv2D(1, 1, name=f"class{stride}")(pooled)
        box_levels.append(keras.layers.Reshape((cells, 4 * REG_MAX), name=f"box{stride}_flat")(box))
        class_levels.append(keras.layers.Reshape((cells, 1), name=f"class{stride}_flat")(score))
    box_distribution = keras.layers.Concatenate(axis=1, name=BOX_OUTPUT)(box_levels)
    class_logits = keras.layers.Concatenate(axis=1, name=CLASS_OUTPUT)(class_levels)
    model = keras.Model(images, {BOX_OUTPUT: box_distribution, CLASS_OUTPUT: class_logits}, name="square_detector")

    model.get_layer("gray").set_weights([np.full((1, 1, 3, 1), 1 / 3, np.float32)])
    for stride in (8, 16, 32):
        model.get_layer(f"cells{stride}").set_weights([np.full((stride, stride, 1, 1), 1 / stride**2, np.float32)])
    logits = np.full(REG_MAX, -30.0, np.float32)
    logits[:2] = np.log([1.0 - side, side])  # the expectation over bins 0 and 1 is `side`
    for stride in (8, 16, 32):
        box_kernel = np.full((1, 1, 1, 4 * REG_MAX), slope, np.float32)
        model.get_layer(f"box{stride}").set_weights([box_kernel, np.tile(logits, 4)])
        weight, bias = (20.0, -10.0) if stride == CELL else (slope, -30.0)
        model.get_layer(f"class{stride}").set_weights([np.full((1, 1, 1, 1), weight, np.float32), np.array([bias])])
    return model


def save_square_detector(folder, data_yaml, side=0.5, slope=0.01):
    """The model as a run folder would hold it: best.keras beside a metadata.json naming its data."""
    folder.mkdir(parents=True, exist_ok=True)
    build_square_detector(side, slope).save(folder / "best.keras")
    metadata = {"names": ["square"], "imgsz": SIZE, "data": str(data_yaml), "reg_max": REG_MAX}
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder / "best.keras"
