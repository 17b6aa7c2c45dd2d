"""Helpers shared by the benchmark scripts: where results go and how they are written."""

import json
import platform
import shutil
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


def cpu_description():
    """(model name, the vector extensions that change int8 kernels and float arithmetic) from /proc/cpuinfo, or
    (None, []) where there is none. The same code converted on a CPU with AVX-512 and on one with AVX2 only gave COCO
    int8 figures a third of a point apart (docs/quantization.md)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, []
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    return fields.get("model name"), sorted(flags & {"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni"})


def machine():
    model, vector_extensions = cpu_description()
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": model,
        "vector_extensions": vector_extensions,
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


def pennfudan_seg_data():
    """pennfudan_seg's data.yaml with its labels beside pennfudan's images, in benchmarks/work. The shared split's
    images/ are relative links into ../pennfudan; a copy that flattened them into small text files cannot be read,
    so the benchmarks link the two folders themselves (as tests/test_segment_evaluation.py does)."""
    seg, images = SHARED / "pennfudan_seg", SHARED / "pennfudan" / "images"
    if not (seg / "data.yaml").is_file() or not images.is_dir():
        raise SystemExit(f"{seg} and {images} are needed: the benchmarks run on ../shared/datasets.")
    root = WORK / "pennfudan_seg"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (root / "images").symlink_to(images)
    (root / "labels").symlink_to(seg / "labels")
    for name in ("train.txt", "val.txt", "data.yaml"):
        shutil.copy(seg / name, root / name)
    return root / "data.yaml"
