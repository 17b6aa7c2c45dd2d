"""Image reading and the one letterbox used everywhere (training, evaluation, calibration, the edge bundle)."""

import dataclasses
import os
from pathlib import Path

import cv2
import numpy as np

from tfyolo.errors import DataError

PAD_VALUE = 114  # YOLOv8's gray padding


def decode_bgr(data):
    """`cv2.imdecode(data, IMREAD_COLOR)`: (H, W, 3) uint8 BGR, or None for bytes that do not decode. Raises
    ValueError for a header declaring more pixels than OPENCV_IO_MAX_IMAGE_PIXELS (tfyolo.config.MAX_IMAGE_PIXELS),
    which OpenCV refuses before it allocates the image."""
    try:
        return cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error:
        limit = os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", "")
        raise ValueError(f"declares more than {limit} pixels, the most tfyolo decodes") from None


def read_image_rgb(path):
    """Reads an image as (H, W, 3) uint8 RGB, upright: the one decoder of training, evaluation, calibration and
    the bundle.

    `IMREAD_COLOR` applies a JPEG's EXIF orientation, as Ultralytics' `cv2.imread` does: its users' labels are
    drawn on the upright image. It also turns gray into three channels, drops alpha and scales 16-bit to 8-bit.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found.")
    data = np.fromfile(str(path), dtype=np.uint8)
    try:
        image = decode_bgr(data) if data.size else None
    except ValueError as error:
        raise DataError(f"{path}: its header {error}.") from None
    if image is None:
        raise DataError(f"{path}: cannot decode this file as an image (corrupt, truncated or not an image).")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@dataclasses.dataclass(frozen=True)
class LetterboxInfo:
    """How an original image maps into the square model input: input = original * scale + (pad_x, pad_y)."""

    scale: float
    pad_x: float
    pad_y: float
    original_height: int
    original_width: int

    def to_original(self, boxes_xyxy_pixels):
        """Maps xyxy boxes in input pixels back to the original image, clipped to its bounds."""
        boxes = np.array(boxes_xyxy_pixels, dtype=np.float64).reshape(-1, 4)
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - self.pad_x) / self.scale
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - self.pad_y) / self.scale
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, self.original_width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, self.original_height)
        return boxes


def resize_long_side(image, size):
    """Resizes keeping the aspect ratio so the long side is `size`; returns (image, scale).

    Shrinking uses INTER_AREA and enlarging INTER_LINEAR, to rounded sides: tfyolo's one convention for every
    model it scores. Ultralytics 8.4's val loader resizes with INTER_LINEAR to ceil'ed sides, which moves its
    mAP on PennFudan by up to 1.6 points (docs/evaluation.md).
    """
    height, width = image.shape[:2]
    scale = min(size / height, size / width)
    new_width, new_height = int(round(width * scale)), int(round(height * scale))
    if (new_width, new_height) != (width, height):
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (new_width, new_height), interpolation=interpolation)
    return image, scale


def letterbox(image, size, pad_value=PAD_VALUE):
    """`resize_long_side`, then pads to `size` x `size` centered; returns (uint8 image, LetterboxInfo)."""
    height, width = image.shape[:2]
    image, scale = resize_long_side(image, size)
    new_height, new_width = image.shape[:2]
    pad_x, pad_y = (size - new_width) / 2, (size - new_height) / 2
    top, left = int(round(pad_y - 0.1)), int(round(pad_x - 0.1))
    bottom, right = size - new_height - top, size - new_width - left
    padded = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(pad_value,) * 3)
    return padded, LetterboxInfo(scale, left, top, height, width)


def resize_square_inputs(images, size):
    """Square model inputs (N, S, S, 3), letterboxed at side S, at side `size` instead: what a letterbox at `size`
    gives, up to interpolation and a pixel of padding (a square scales to a square). For calibration images."""
    interpolation = cv2.INTER_AREA if size < images.shape[1] else cv2.INTER_LINEAR
    return np.stack([cv2.resize(image, (size, size), interpolation=interpolation) for image in images]).astype(
        images.dtype
    )


def to_model_input(images_uint8):
    """uint8 RGB (..., H, W, 3) -> float32 in [0, 1]: the only normalization the models ever see."""
    return np.asarray(images_uint8, dtype=np.float32) / 255.0
