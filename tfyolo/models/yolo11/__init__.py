"""YOLO11 (Ultralytics, 2024): C3k2 blocks, SPPF and a C2PSA attention block in the backbone, YOLOv8's neck with
C3k2, and a decoupled DFL head whose class branch is depthwise-separable."""
