"""TFLite latency with the LiteRT interpreter: returns numbers, prints nothing."""

import os
import time
from pathlib import Path

import numpy as np
import psutil

from tfyolo.tflite_runtime import make_interpreter


def _random_input(detail, rng):
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=detail["shape"], endpoint=True).astype(dtype)
    return rng.uniform(0, 1, size=detail["shape"]).astype(dtype)


def benchmark_tflite(model_content, num_threads=2, warmup=10, runs=100, xnnpack=True):
    """Times `invoke()` on random input; returns p50/p90/p99/mean (ms), throughput and peak RSS of the process."""
    interpreter = make_interpreter(model_content=model_content, num_threads=num_threads, xnnpack=xnnpack)
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], _random_input(detail, rng))
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1000.0)
    times = np.asarray(times)
    process = psutil.Process()
    memory = process.memory_info()
    peak = getattr(memory, "peak_wset", None) or _peak_rss_bytes()
    return {
        "threads": num_threads,
        "xnnpack": xnnpack,
        "runs": runs,
        "warmup": warmup,
        "latency_ms_p50": float(np.percentile(times, 50)),
        "latency_ms_p90": float(np.percentile(times, 90)),
        "latency_ms_p99": float(np.percentile(times, 99)),
        "latency_ms_mean": float(times.mean()),
        "latency_ms_min": float(times.min()),
        "throughput_fps": float(1000.0 / times.mean()),
        "peak_rss_mb": peak / 2**20 if peak else None,
    }


def _peak_rss_bytes():
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except (ImportError, AttributeError):
        return None


def _latency_summary(times_ms):
    times = np.asarray(times_ms)
    return {
        "runs": int(times.size),
        "latency_ms_p50": float(np.percentile(times, 50)),
        "latency_ms_p90": float(np.percentile(times, 90)),
        "latency_ms_mean": float(times.mean()),
        "latency_ms_min": float(times.min()),
    }


def interleaved_latency(models, num_threads=2, rounds=15, block_ms=150.0, warmup=3, progress=None):
    """Times several models in one run, interleaved: `rounds` rounds, each running every model for a block of
    about `block_ms` (at least one invoke), the order reversed every other round. A machine whose load changes
    during the run then slows every model alike, so their ratios hold where one-after-another timings do not
    (measured: fp16 looked 3x faster than fp32 on the same kernels when each was timed after its conversion).

    models: {name: .tflite bytes}. Returns {"models": {name: p50/p90/mean/min ms and runs}, "threads",
    "rounds", "load_average": [before, after] (1-minute load average, None where the OS has none)}.
    progress: optional callable(number of rounds done).
    """
    rng = np.random.default_rng(0)
    interpreters, per_block = {}, {}
    for name, content in models.items():
        interpreter = make_interpreter(model_content=content, num_threads=num_threads)
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], _random_input(detail, rng))
        started = time.perf_counter()
        for _ in range(warmup):
            interpreter.invoke()
        first_ms = (time.perf_counter() - started) * 1000.0 / max(warmup, 1)
        interpreters[name] = interpreter
        per_block[name] = int(min(50, max(1, round(block_ms / max(first_ms, 1e-3)))))
    load_before = _load_average()
    times = {name: [] for name in models}
    order = list(models)
    for round_index in range(rounds):
        for name in order if round_index % 2 == 0 else order[::-1]:
            interpreter = interpreters[name]
            for _ in range(per_block[name]):
                start = time.perf_counter()
                interpreter.invoke()
                times[name].append((time.perf_counter() - start) * 1000.0)
        if progress:
            progress(1)
    return {
        "models": {name: _latency_summary(values) for name, values in times.items()},
        "threads": num_threads,
        "rounds": rounds,
        "load_average": [load_before, _load_average()],
    }


def _load_average():
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def benchmark_models(paths, threads, warmup, runs, xnnpack=True):
    """Times each .tflite at every thread count, in turn; returns {"models": [{"path", "detector", "size_bytes",
    "ops", "tensor_types", "runs": [stats per thread count, with ratio_vs_first]}], "threads", ...}."""
    from tfyolo.errors import ModelError
    from tfyolo.tflite_runtime import inspect_tflite

    models = []
    for path in paths:
        content = Path(path).read_bytes()
        try:
            inspection = inspect_tflite(content)
        except (ValueError, RuntimeError) as error:
            raise ModelError(f"{path}: not a valid TFLite model ({str(error).splitlines()[0]}).")
        entry = {
            "path": str(path),
            "detector": _detector_summary(content),
            "size_bytes": len(content),
            "ops": inspection["ops"],
            "tensor_types": inspection["tensor_types"],
            "float_compute_ops": len(inspection["float_compute_ops"]),
            "runs": [],
        }
        for count in threads:
            entry["runs"].append(
                benchmark_tflite(content, num_threads=count, warmup=warmup, runs=runs, xnnpack=xnnpack)
            )
        models.append(entry)
    first = models[0]
    for entry in models:
        for run, base in zip(entry["runs"], first["runs"]):
            run["ratio_vs_first"] = run["latency_ms_p50"] / base["latency_ms_p50"]
    return {"models": models, "threads": list(threads), "warmup": warmup, "runs": runs, "xnnpack": xnnpack}


def _detector_summary(content):
    """What the model detects (layout, input, classes, reg_max), read the way the evaluator reads it; None for a
    .tflite that is not a detector (it is still timed)."""
    from tfyolo.errors import ModelError
    from tfyolo.evaluation.runners import TFLiteRunner

    try:
        runner = TFLiteRunner(model_content=content, num_threads=1)
    except ModelError:
        return None
    return {
        "layout": runner.layout,
        "input_size": runner.input_size,
        "input_layout": "NCHW" if runner.channels_first else "NHWC",
        "num_classes": runner.num_classes,
        "reg_max": runner.reg_max,
    }
