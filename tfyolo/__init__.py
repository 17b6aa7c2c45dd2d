"""tfyolo: train a Keras YOLO detector and ship a verified quantized TFLite model."""

__version__ = "0.1.0"
