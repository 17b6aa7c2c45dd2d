"""Where a segmentation int8 file's mask error comes from: on the float model's detections (score above 0.25) on the
val images, the IoU of each detection's int8 mask with its float mask inside the float box, at the prototypes'
resolution, with both int8 outputs, with the int8 coefficients alone (float prototypes) and with the int8
prototypes alone (float coefficients). 51 images cannot tell small range changes apart by mAP (their seeds spread
over 0.3-0.5 points); this agreement can (docs/quantization.md).

Usage: python -m benchmarks.study_seg_masks FLOAT_MODEL DATA.yaml INT8.tflite [INT8.tflite ...]
(FLOAT_MODEL: the .keras, or the Ultralytics .pt imported on the fly as tfyolo-eval does.)
"""

from pathlib import Path

import click
import numpy as np

from tfyolo.models.detect_head import CLASS_OUTPUT
from tfyolo.models.tasks import MASK_COEFFICIENTS, MASK_PROTOTYPES

DETECTED = 0.25


def mask_logits(coefficients, prototypes):
    """(n, h, w) logits of n detections from their (n, 32) coefficients and their images' (n, h, w, 32) prototypes."""
    return np.einsum("nk,nhwk->nhw", coefficients, prototypes)


def mean_iou(a, b):
    return float(((a & b).sum((1, 2)) / np.maximum((a | b).sum((1, 2)), 1)).mean())


def agreement(reference, raw, boxes, selected):
    """{which int8 outputs: mean IoU with the float masks} over the float model's `selected` anchors."""
    images = np.nonzero(selected)[0]
    side = reference[MASK_PROTOTYPES].shape[1]
    centres = (np.arange(side) + 0.5) / side
    chosen = boxes[selected]  # (n, 4) xyxy as fractions of the input
    inside = (
        (centres[None, :, None] >= chosen[:, 1, None, None])
        & (centres[None, :, None] < chosen[:, 3, None, None])
        & (centres[None, None, :] >= chosen[:, 0, None, None])
        & (centres[None, None, :] < chosen[:, 2, None, None])
    )

    def masks(coefficients, prototypes):
        return (mask_logits(coefficients[selected], prototypes[images]) > 0) & inside

    exact = masks(reference[MASK_COEFFICIENTS], reference[MASK_PROTOTYPES])
    return {
        "int8 coefficients and prototypes": mean_iou(masks(raw[MASK_COEFFICIENTS], raw[MASK_PROTOTYPES]), exact),
        "int8 coefficients only": mean_iou(masks(raw[MASK_COEFFICIENTS], reference[MASK_PROTOTYPES]), exact),
        "int8 prototypes only": mean_iou(masks(reference[MASK_COEFFICIENTS], raw[MASK_PROTOTYPES]), exact),
    }


@click.command()
@click.argument("float_model", type=click.Path(exists=True, dir_okay=False))
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def main(float_model, data, artifacts):
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.data.images import letterbox, read_image_rgb, to_model_input
    from tfyolo.evaluation.runners import TFLiteRunner
    from tfyolo.jobs.model_runner import open_runner

    reference_runner = open_runner(float_model)
    size = reference_runner.input_size
    samples = DetectionDataset.from_data_yaml(data, "val").samples
    batch = to_model_input(np.stack([letterbox(read_image_rgb(sample.image_path), size)[0] for sample in samples]))
    reference = reference_runner.predict_raw(batch)
    boxes, _ = reference_runner.decode(reference)
    selected = 1.0 / (1.0 + np.exp(-reference[CLASS_OUTPUT].max(-1))) > DETECTED
    print(f"{int(selected.sum())} float detections above {DETECTED} on {len(samples)} images")
    for artifact in artifacts:
        found = agreement(reference, TFLiteRunner(artifact).predict_raw(batch), boxes, selected)
        print(f"{Path(artifact).name}: " + "; ".join(f"{which} {iou:.4f}" for which, iou in found.items()))


if __name__ == "__main__":
    main()
