import numpy as np
import pytest

from tfyolo.errors import ConfigError
from tfyolo.ops.boxes import convert_format, pairwise_iou


def test_formats_round_trip_through_xyxy():
    cxcywh = np.array([[0.5, 0.5, 0.2, 0.4]])
    xyxy = convert_format(cxcywh, "cxcywh", "xyxy")
    np.testing.assert_allclose(xyxy, [[0.4, 0.3, 0.6, 0.7]], atol=1e-7)
    np.testing.assert_allclose(convert_format(xyxy, "xyxy", "xywh"), [[0.4, 0.3, 0.2, 0.4]], atol=1e-7)
    np.testing.assert_allclose(
        convert_format(convert_format(cxcywh, "cxcywh", "xywh"), "xywh", "cxcywh"), cxcywh, atol=1e-7
    )


def test_unknown_format():
    with pytest.raises(ConfigError, match="Unknown box format 'yolo'"):
        convert_format(np.zeros((1, 4)), "yolo", "xyxy")


def test_pairwise_iou_golden():
    # a = 10x10 at origin; b shifted right by 5: intersection 5*10 = 50, union 100 + 100 - 50 = 150 -> 1/3.
    # c disjoint -> 0.
    a = np.array([[0, 0, 10, 10]])
    others = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    np.testing.assert_allclose(pairwise_iou(a, others), [[1 / 3, 0.0, 1.0]])
