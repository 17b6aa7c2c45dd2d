"""Readers for detectors trained elsewhere (Ultralytics checkpoints), without their frameworks."""
