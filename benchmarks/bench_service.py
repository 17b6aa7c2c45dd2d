"""Load on the conversion service (bounded, local, loopback only): 20 tiny convert jobs submitted at once to
`tfyolo serve` with 2 workers. Every job must finish, none lost or run twice; reports jobs per minute and the API's
p95 latency while the workers are busy.

A tiny job: a 64 px, 2-class detector (random weights), converted with the fp32 recipe, evaluated on 5 synthetic
images and timed; most of its time is the conversion's child process.

Usage: python -m benchmarks.bench_service [--jobs 20] [--workers 2]
"""

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

import click

from benchmarks.common import ROOT, WORK, machine, markdown_table, write_results

TOKEN = "bench-service-token-0123456789"


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _prepare(folder):
    """A tiny model and dataset, registered as the service's only dataset."""
    from tfyolo.data.synthetic import write_synthetic_dataset
    from tfyolo.models.model_config import ModelConfig
    from tfyolo.models.yolo_detector import build_yolo_detector

    data = write_synthetic_dataset(folder / "data", images=24, num_classes=2, size=64, seed=3, val_fraction=0.2)
    model_path = folder / "tiny.keras"
    build_yolo_detector(ModelConfig(num_classes=2, input_size=64)).save(model_path)
    service = folder / "service"
    service.mkdir()
    (service / "datasets.json").write_text(json.dumps({"tiny": str(data)}))
    return model_path, service


def _percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


@click.command()
@click.option("--jobs", "job_count", default=20, show_default=True)
@click.option("--workers", default=2, show_default=True)
def main(job_count, workers):
    import httpx

    folder = WORK / "service_load"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    model_path, service_dir = _prepare(folder)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    environment = dict(os.environ, TFYOLO_API_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    log = open(folder / "serve.log", "w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tfyolo",
            "serve",
            "--data-dir",
            str(service_dir),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environment,
        start_new_session=True,
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    latencies = {"submit": [], "poll": []}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start; see {folder / 'serve.log'}")
                time.sleep(0.5)
            model_bytes = model_path.read_bytes()
            ids, lock = [], threading.Lock()

            def submit():
                started = time.perf_counter()
                response = httpx.post(
                    f"{base}/jobs",
                    headers=headers,
                    timeout=60,
                    files={"model": ("tiny.keras", model_bytes)},
                    data={"recipes": "fp32", "data_dataset": "tiny", "calibration_dataset": "tiny"},
                )
                elapsed = time.perf_counter() - started
                response.raise_for_status()
                with lock:
                    latencies["submit"].append(elapsed)
                    ids.append(response.json()["id"])

            started = time.perf_counter()
            threads = [threading.Thread(target=submit) for _ in range(job_count)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            click.echo(f"submitted {len(ids)} jobs in {time.perf_counter() - started:.1f} s", err=True)
            finished_at = {}
            while len(finished_at) < len(ids):
                for job_id in ids:
                    if job_id in finished_at:
                        continue
                    request_started = time.perf_counter()
                    record = client.get(f"/jobs/{job_id}").json()
                    latencies["poll"].append(time.perf_counter() - request_started)
                    if record["state"] in ("succeeded", "failed", "cancelled"):
                        finished_at[job_id] = time.perf_counter() - started
                        click.echo(f"  {len(finished_at)}/{len(ids)} {job_id[:8]} {record['state']}", err=True)
                request_started = time.perf_counter()
                client.get("/jobs")
                latencies["poll"].append(time.perf_counter() - request_started)
                time.sleep(0.2)
            records = [client.get(f"/jobs/{job_id}").json() for job_id in ids]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    elapsed = max(finished_at.values())
    runs = [sum(event["text"].startswith("running on") for event in record["events"]) for record in records]
    states = [record["state"] for record in records]
    workers_used = sorted({record["worker"] for record in records})
    result = {
        "machine": machine(),
        "jobs": job_count,
        "workers": workers,
        "submitted": len(ids),
        "distinct_ids": len(set(ids)),
        "succeeded": states.count("succeeded"),
        "ran_exactly_once": sum(count == 1 for count in runs),
        "workers_used": workers_used,
        "seconds": elapsed,
        "jobs_per_minute": 60.0 * len(ids) / elapsed,
        "submit_ms_p95": 1000 * _percentile(latencies["submit"], 0.95),
        "api_ms_p50_busy": 1000 * statistics.median(latencies["poll"]),
        "api_ms_p95_busy": 1000 * _percentile(latencies["poll"], 0.95),
        "api_requests_busy": len(latencies["poll"]),
    }
    rows = [
        {
            "measure": "jobs submitted at once / succeeded / ran exactly once",
            "value": f"{result['submitted']} / {result['succeeded']} / {result['ran_exactly_once']}",
        },
        {"measure": "workers that ran jobs", "value": str(len(workers_used))},
        {"measure": "wall time, first submit to last finish (s)", "value": f"{elapsed:.1f}"},
        {"measure": "jobs per minute", "value": f"{result['jobs_per_minute']:.1f}"},
        {"measure": "POST /jobs p95 (ms, 20 at once)", "value": f"{result['submit_ms_p95']:.0f}"},
        {
            "measure": "GET /jobs/{id}, GET /jobs p50 / p95 while busy (ms)",
            "value": f"{result['api_ms_p50_busy']:.1f} / {result['api_ms_p95_busy']:.1f} "
            f"({result['api_requests_busy']} requests)",
        },
    ]
    markdown = "\n".join(
        [
            f"# Service load: {job_count} tiny convert jobs at once, {workers} workers, loopback",
            "",
            markdown_table(rows, [("measure", "measure", None), ("value", "value", None)]),
            "",
            "A tiny job: 64 px 2-class detector, fp32 recipe, 5 val images, interleaved timing. The web process "
            "answers from SQLite while both workers convert.",
        ]
    )
    write_results("service_load", result, markdown)
    print(markdown)
    if result["succeeded"] != job_count or result["ran_exactly_once"] != job_count:
        raise SystemExit(f"jobs lost, failed or run twice: {states}, runs {runs}")


if __name__ == "__main__":
    main()
