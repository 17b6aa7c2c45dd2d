"""YOLOv8 (Ultralytics, 2023): CSP backbone of C2f blocks, SPPF, PAN-FPN neck, decoupled DFL head."""
