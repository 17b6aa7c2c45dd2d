"""tf.data input pipelines: augmented training batches and letterboxed evaluation batches."""

import dataclasses

import numpy as np

from tfyolo.compat import tf
from tfyolo.data.augment import training_sample, training_sample_with_polygons
from tfyolo.data.images import letterbox, to_model_input
from tfyolo.data.polygons import polygon_masks
from tfyolo.errors import DataError


def kept_boxes(boxes, max_boxes):
    """Indices of the boxes a padded batch keeps: all, or the `max_boxes` largest (mosaic can in rare cases exceed
    the budget sized from the dataset)."""
    if len(boxes) <= max_boxes:
        return np.arange(len(boxes))
    return np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")[:max_boxes]


def pad_boxes(boxes, class_ids, max_boxes):
    """Pads to a fixed `max_boxes` (class -1 marks padding) so every batch has one static shape."""
    if len(boxes) > max_boxes:
        keep = kept_boxes(boxes, max_boxes)
        boxes, class_ids = boxes[keep], class_ids[keep]
    padded_boxes = np.zeros((max_boxes, 4), np.float32)
    padded_classes = np.full((max_boxes,), -1, np.int32)
    padded_boxes[: len(boxes)] = boxes
    padded_classes[: len(class_ids)] = class_ids
    return padded_boxes, padded_classes


def padded_masks(boxes, polygons, size, max_boxes, ratio):
    """(max_boxes, size // ratio, size // ratio) uint8: the kept boxes' outline masks, in pad_boxes' order, zeros
    for padding."""
    keep = kept_boxes(boxes, max_boxes)
    masks = np.zeros((max_boxes, size // ratio, size // ratio), np.uint8)
    masks[: len(keep)] = polygon_masks([polygons[i] for i in keep], size, ratio)
    return masks


def training_dataset(dataset, size, batch_size, max_boxes, augment, use_mosaic, seed, epoch, mask_ratio=None):
    """Yields (images float32 (B,S,S,3) in [0,1], gt_boxes (B,M,4) xyxy px, gt_classes (B,M), gt_mask (B,M)), and
    with `mask_ratio` a fifth element, gt_masks (B, M, S / mask_ratio, S / mask_ratio) float32 0/1: each object's
    outline filled at that resolution (a segmentation model's prototypes'), the boxes then being the outlines'
    extents (`training_sample_with_polygons`).

    Each epoch draws its own order and per-sample seeds from (seed, epoch), so a resumed run sees the same data
    as an uninterrupted one. Incomplete last batches are dropped: a smaller batch would retrace the train step.
    """
    if len(dataset) < batch_size:
        raise DataError(
            f"{dataset.description}: {len(dataset)} training images is fewer than one batch of {batch_size}; "
            "lower --batch."
        )
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(dataset)).astype(np.int64)
    sample_seeds = rng.integers(0, 2**31 - 1, size=len(dataset), dtype=np.int64)

    def load(index, sample_seed):
        sample_rng = np.random.default_rng(int(sample_seed))
        image, boxes, class_ids = training_sample(dataset, int(index), size, sample_rng, augment, bool(use_mosaic))
        boxes, class_ids = pad_boxes(boxes, class_ids, max_boxes)
        return image, boxes, class_ids

    def load_with_masks(index, sample_seed):
        sample_rng = np.random.default_rng(int(sample_seed))
        image, boxes, class_ids, polygons = training_sample_with_polygons(
            dataset, int(index), size, sample_rng, augment, bool(use_mosaic)
        )
        masks = padded_masks(boxes, polygons, size, max_boxes, mask_ratio)
        boxes, class_ids = pad_boxes(boxes, class_ids, max_boxes)
        return image, boxes, class_ids, masks

    def load_tensors(index, sample_seed):
        if mask_ratio:
            types = [tf.uint8, tf.float32, tf.int32, tf.uint8]
            loaded = tf.numpy_function(load_with_masks, [index, sample_seed], types)
            loaded[3].set_shape([max_boxes, size // mask_ratio, size // mask_ratio])
        else:
            loaded = tf.numpy_function(load, [index, sample_seed], [tf.uint8, tf.float32, tf.int32])
        loaded[0].set_shape([size, size, 3])
        loaded[1].set_shape([max_boxes, 4])
        loaded[2].set_shape([max_boxes])
        return tuple(loaded)

    def to_batch(images, boxes, class_ids, *masks):
        mask = tf.cast(class_ids >= 0, tf.float32)
        gt_masks = tuple(tf.cast(m, tf.float32) for m in masks)
        return (tf.cast(images, tf.float32) / 255.0, boxes, tf.maximum(class_ids, 0), mask) + gt_masks

    return (
        tf.data.Dataset.from_tensor_slices((order, sample_seeds))
        .map(load_tensors, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size, drop_remainder=True)
        .map(to_batch)
        .prefetch(tf.data.AUTOTUNE)
    )


def evaluation_batches(dataset, size, batch_size, indices=None, cache=True):
    """Yields (sample indices, float32 batch, LetterboxInfo list) of letterboxed images, no augmentation.

    cache: keep the resized images in the dataset for the next pass (see `DetectionDataset.load_resized`)."""
    indices = list(range(len(dataset))) if indices is None else list(indices)
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        images, infos = [], []
        for index in chunk:
            image, (original_height, original_width) = dataset.load_resized(index, size, cache)
            boxed, info = letterbox(image, size)
            # The cached copy is already resized (long side = size); boxes map back to the *original* image.
            scale = size / max(original_height, original_width)
            infos.append(
                dataclasses.replace(info, scale=scale, original_height=original_height, original_width=original_width)
            )
            images.append(boxed)
        yield chunk, to_model_input(np.stack(images)), infos
