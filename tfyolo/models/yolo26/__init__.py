"""YOLO26 (Ultralytics, 2026): YOLO11's layout with a residual SPPF whose cv1 is linear, C3k blocks throughout the
neck and attention in its last block, and a DFL-free head (plain box distances) with two branches: one-to-many
(NMS) and one-to-one (top-k, no NMS)."""
