"""Helpers shared by the benchmark scripts: where results go and how they are written."""

import json
import platform
import time
from pathlib import Path

import psutil

from tfyolo.io_utils import atomic_write_json, atomic_write_text
from tfyolo.markdown import markdown_table  # noqa: F401  (the benchmarks' tables)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "work"
SHARED = ROOT.parent / "shared" / "datasets"
PENNFUDAN = SHARED / "pennfudan" / "data.yaml"


def machine():
    return {
        "cpu": platform.processor() or platform.machine(),
        "logical_cores": psutil.cpu_count(),
        "load_average_1m": psutil.getloadavg()[0],
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def require_dataset(path):
    if not Path(path).is_file():
        raise SystemExit(f"{path} not found: the real-data benchmarks need ../shared/datasets beside the project.")
    return Path(path)


def write_results(name, data, markdown):
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"{name}.json", data)
    atomic_write_text(RESULTS / f"{name}.md", markdown + "\n")
    return RESULTS / f"{name}.json", RESULTS / f"{name}.md"


def load_json(path):
    return json.loads(Path(path).read_text())


def seeded_recipes(folder, seed, names):
    """The built-in recipes `names` with calibration seed `seed`, as recipe files in `folder` (same names, so the
    same row names); returns their paths."""
    from tfyolo.quantization.recipe import Recipe
    from tfyolo.quantization.recipes_dir import resolve_recipe

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = folder / f"{name}.yaml"
        path.write_text(Recipe(**{**resolve_recipe(name).to_dict(), "calibration_seed": seed}).to_yaml())
        paths.append(str(path))
    return tuple(paths)
