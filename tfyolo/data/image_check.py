"""Decodes every image of a split before any work starts, so a corrupt file is named up front instead of failing a
training run after its first epoch.

Images that decoded once are remembered by resolved path, size and modification time in a cache file under the
user's cache folder (never inside the dataset, which may be read-only); a changed file is checked again.
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tfyolo.data.images import decode_bgr
from tfyolo.io_utils import atomic_write_json

CACHE_VERSION = 1


def cache_path():
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tfyolo" / "decoded_images.json"


def _fingerprint(path):
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def decode_problem(path):
    """None if `path` decodes as an image (as training will read it), else what is wrong, in a few words."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if not data.size:
        return "is empty (0 bytes)"
    try:
        image = decode_bgr(data)  # as read_image_rgb decodes it
    except ValueError as error:
        return str(error)
    if image is None or image.size == 0:
        return "cannot be decoded (corrupt, truncated or not an image)"
    return None


def _load_cache(path):
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cache.get("images", {}) if cache.get("version") == CACHE_VERSION else {}


def find_bad_images(paths, workers=None, progress=None):
    """[(path, problem)] of the images in `paths` that do not decode; checks in parallel, skips cached ones.

    progress: optional callable(number of images checked).
    """
    store = cache_path()
    cache = _load_cache(store)
    paths = [Path(path) for path in paths]
    keys = {path: str(path.resolve()) for path in paths}
    unchecked = []
    for path in paths:
        try:
            known = cache.get(keys[path]) == _fingerprint(path)
        except OSError:
            known = False
        if known:
            if progress:
                progress(1)
        else:
            unchecked.append(path)

    def check(path):
        problem = decode_problem(path)
        if progress:
            progress(1)
        return path, problem

    # OpenCV's decoders release the GIL: threads use every core without pickling images between processes.
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        results = list(pool.map(check, unchecked))
    bad = [(path, problem) for path, problem in results if problem]
    fresh = {keys[path]: _fingerprint(path) for path, problem in results if problem is None}
    if fresh:
        cache.update(fresh)
        try:
            atomic_write_json(store, {"version": CACHE_VERSION, "images": cache})
        except OSError:
            pass  # a cache that cannot be written only costs the next run another decode
    return bad


def checked_split(dataset, skip_bad=False, progress=None):
    """`dataset` once every image is known to decode. A bad image is an error naming each file, unless
    `skip_bad`: then the dataset comes back without them. Returns (dataset, [(path, problem)])."""
    from tfyolo.data.detection_dataset import DetectionDataset
    from tfyolo.errors import DataError

    bad = find_bad_images([sample.image_path for sample in dataset.samples], progress=progress)
    if not bad:
        return dataset, bad
    if not skip_bad:
        shown = "; ".join(f"{path} {problem}" for path, problem in bad[:10])
        more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
        raise DataError(
            f"{dataset.description}: {len(bad)} image(s) cannot be used: {shown}{more}. Replace or remove them, or "
            "pass --skip-bad-images to train without them."
        )
    unusable = {path for path, _ in bad}
    kept = [sample for sample in dataset.samples if sample.image_path not in unusable]
    return DetectionDataset(kept, dataset.names, dataset.description), bad
