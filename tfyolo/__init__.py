"""tfyolo: train a Keras YOLO detector and ship a verified quantized TFLite model."""

__version__ = "0.1.0"

import os as _os

from tfyolo.config import MAX_IMAGE_PIXELS as _MAX_IMAGE_PIXELS

# OpenCV reads its decode limit once, when cv2 loads, so it is set here, before any tfyolo module imports cv2; a value
# the user exported is kept. A larger image is refused by `tfyolo.data.images.read_image_rgb` in one line.
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(_MAX_IMAGE_PIXELS))
