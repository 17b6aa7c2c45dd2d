"""Ultralytics-style data.yaml, read unchanged."""

import dataclasses
from pathlib import Path

import yaml

from tfyolo.errors import DataError

KNOWN_KEYS = {"path", "train", "val", "test", "nc", "names", "download"}
SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """A parsed data.yaml.

    Args:
        yaml_path: Path. The file it came from.
        root: Path. Dataset root (`path`, relative to the yaml's folder).
        splits: dict split name -> tuple of Paths (folders or .txt lists), relative paths resolved.
        names: tuple of str. Class names, index = class id.
    """

    yaml_path: Path
    root: Path
    splits: dict
    names: tuple

    @property
    def num_classes(self):
        return len(self.names)

    def split_sources(self, split):
        if split not in self.splits:
            raise DataError(f"{self.yaml_path}: no {split!r} split; the file defines {sorted(self.splits)}.")
        return self.splits[split]


def _parse_names(raw, yaml_path):
    if isinstance(raw, (list, tuple)):
        return tuple(str(name) for name in raw)
    if isinstance(raw, dict):
        try:
            ids = sorted(int(key) for key in raw)
        except (TypeError, ValueError):
            raise DataError(f"{yaml_path}: 'names' keys must be integer class ids, received {sorted(raw)!r}.")
        if ids != list(range(len(ids))):
            raise DataError(f"{yaml_path}: 'names' ids must be 0..{len(ids) - 1} without gaps, received {ids}.")
        return tuple(str(raw[key]) for key in sorted(raw, key=int))
    raise DataError(f"{yaml_path}: 'names' must be a list or a dict id -> name, received {type(raw).__name__}.")


def load_data_config(yaml_path):
    yaml_path = Path(yaml_path)
    if not yaml_path.is_file():
        raise DataError(f"{yaml_path}: data.yaml not found.")
    try:
        raw = yaml.safe_load(yaml_path.read_text())
    except yaml.YAMLError as error:
        raise DataError(f"{yaml_path}: not valid YAML ({' '.join(str(error).split())}).")
    if not isinstance(raw, dict):
        raise DataError(f"{yaml_path}: expected a mapping with keys {sorted(KNOWN_KEYS)}.")
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise DataError(f"{yaml_path}: unknown key(s) {unknown}; a data.yaml may hold {sorted(KNOWN_KEYS)}.")
    missing = [key for key in ("train", "val", "names") if key not in raw]
    if missing:
        raise DataError(f"{yaml_path}: missing required key(s) {missing}.")
    names = _parse_names(raw["names"], yaml_path)
    if "nc" in raw and (isinstance(raw["nc"], bool) or not isinstance(raw["nc"], int)):
        raise DataError(f"{yaml_path}: 'nc' must be an integer, received {type(raw['nc']).__name__} {raw['nc']!r}.")
    if "nc" in raw and raw["nc"] != len(names):
        raise DataError(f"{yaml_path}: nc is {raw['nc']} but 'names' lists {len(names)} classes.")
    if raw.get("path") is not None and not isinstance(raw["path"], str):
        raise DataError(f"{yaml_path}: 'path' must be a folder path, received {type(raw['path']).__name__}.")
    root = Path(raw.get("path") or ".")
    if not root.is_absolute():
        root = (yaml_path.parent / root).resolve()
    splits = {}
    for split in SPLITS:
        value = raw.get(split)
        if not value:
            continue
        entries = value if isinstance(value, (list, tuple)) else [value]
        for entry in entries:
            if not isinstance(entry, str):
                raise DataError(
                    f"{yaml_path}: {split!r} must be a folder or .txt list path (or a list of them), received "
                    f"{type(entry).__name__} {entry!r}."
                )
        splits[split] = tuple(Path(entry) if Path(entry).is_absolute() else root / entry for entry in entries)
    return DataConfig(yaml_path=yaml_path.resolve(), root=root, splits=splits, names=names)
