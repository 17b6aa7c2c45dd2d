"""Instance masks scored by pycocotools' "segm": the ground truth from a split's polygons, the predictions assembled
from a segmentation model's coefficients and prototypes (`tfyolo.ops.masks`), both at the original image size and
as RLE, so pycocotools computes every IoU and AP (nothing hand-written)."""

import numpy as np
from pycocotools import mask as mask_utils

from tfyolo.errors import DataError
from tfyolo.evaluation.coco_metrics import coco_ground_truth
from tfyolo.models.tasks import MASK_COEFFICIENTS, MASK_PROTOTYPES
from tfyolo.ops.masks import assemble_masks

# Masks assembled and encoded per call: (H, W, 32) uint8 of a 1000 x 1000 image is 32 MB, whatever the 300
# detections an image may keep at confidence 0.001.
ENCODE_CHUNK = 32


def encode_masks(masks):
    """(N, H, W) bool -> N COCO RLEs (pycocotools' own encoder, column-major as it requires)."""
    if not len(masks):
        return []
    return mask_utils.encode(np.asfortranarray(np.transpose(masks, (1, 2, 0)).astype(np.uint8)))


def polygon_pixels(polygon, width, height):
    """A (K, 2) normalized polygon as COCO's flat [x1, y1, x2, y2, ...] list in pixels of the original image."""
    return (np.asarray(polygon, np.float64) * [width, height]).ravel().tolist()


class MaskScoring:
    """Segmentation's COCO scoring: what the evaluator adds to the box scoring for the "segm" iouType."""

    iou_type = "segm"
    # The key of its summary in `tfyolo-eval --json` (the box summary stays at the top level).
    report_key = "mask"

    def check_dataset(self, dataset):
        """One DataError where the split cannot score masks: it has no polygons."""
        if not dataset.has_polygons:
            raise DataError(
                f"{dataset.description}: its labels hold no polygons, and a segmentation model's masks are scored "
                "against them (label lines 'class x1 y1 x2 y2 x3 y3 ...', normalized)."
            )

    def ground_truth(self, dataset, image_sizes):
        """COCO dict of the evaluated images' instances with their polygons as `segmentation` and their mask area,
        in the order and with the ids of `coco_ground_truth` (an instance labelled by a box only is its box)."""
        self.check_dataset(dataset)
        ground_truth = coco_ground_truth(dataset, image_sizes)
        outlines = []
        for index, (height, width) in sorted(image_sizes.items()):
            sample = dataset.samples[index]
            polygons = sample.polygons or (None,) * len(sample.class_ids)
            for box, polygon in zip(sample.boxes, polygons):
                if polygon is None:
                    polygon = np.asarray(box)[[0, 1, 2, 1, 2, 3, 0, 3]].reshape(4, 2)
                outlines.append((polygon_pixels(polygon, width, height), height, width))
        for annotation, (outline, height, width) in zip(ground_truth["annotations"], outlines, strict=True):
            annotation["segmentation"] = [outline]
            rle = mask_utils.merge(mask_utils.frPyObjects([outline], height, width))
            annotation["area"] = float(mask_utils.area(rle))
        return ground_truth

    def detections(self, image_index, selected, task_outputs, position, info, input_size):
        """One image's COCO "segm" results: each kept detection's mask at the original image size, as RLE.

        selected: (anchor_index, scores, class_ids, boxes xyxy in original pixels) of the kept detections.
        task_outputs: the runner's task outputs of the batch; position: the image's place in it.
        info: the image's LetterboxInfo (the frame the masks are sampled in)."""
        anchor_index, scores, class_ids, boxes = selected
        prototypes = task_outputs[MASK_PROTOTYPES][position]
        coefficients = task_outputs[MASK_COEFFICIENTS][position][anchor_index]
        shape = (info.original_height, info.original_width)
        results = []
        for start in range(0, len(anchor_index), ENCODE_CHUNK):
            chunk = slice(start, start + ENCODE_CHUNK)
            masks = assemble_masks(
                prototypes, coefficients[chunk], boxes[chunk], shape, input_size, info.scale, (info.pad_x, info.pad_y)
            )
            for rle, score, class_id in zip(encode_masks(masks), scores[chunk], class_ids[chunk]):
                result = {"image_id": int(image_index), "category_id": int(class_id), "segmentation": rle}
                results.append({**result, "score": float(score)})
        return results
