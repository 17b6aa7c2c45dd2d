"""TFLite latency with the LiteRT interpreter: returns numbers, prints nothing."""

import time

import numpy as np
import psutil

from tfyolo.quantization.tflite_inspect import make_interpreter


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
