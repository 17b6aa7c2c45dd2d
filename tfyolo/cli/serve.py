"""`tfyolo serve` (the HTTP API and pages, plus its workers) and `tfyolo worker` (runs queued jobs)."""

import subprocess
import sys
import threading
from pathlib import Path

import click

from tfyolo.cli.common import user_errors


def _sweep(data_dir, huey, stale_seconds, stop):
    """Re-queues (or fails) the jobs of workers that died: now, then every quarter of `stale_seconds`."""
    from tfyolo.service.store import JobStore
    from tfyolo.service.worker import MAX_ATTEMPTS

    store = JobStore(data_dir)
    while True:
        for job_id in store.requeue_lost(stale_seconds, MAX_ATTEMPTS):
            huey.run_job_task(job_id)
        if stop.wait(stale_seconds / 4):
            return


def _parse_datasets(entries):
    datasets = {}
    for entry in entries:
        name, separator, location = entry.partition("=")
        if not separator or not name.replace("_", "").replace("-", "").isalnum() or not Path(location).exists():
            raise click.BadParameter(
                f"expected NAME=PATH with an existing PATH, received {entry!r}.", param_hint="--dataset"
            )
        datasets[name] = location
    return datasets


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--data-dir", required=True, type=click.Path(file_okay=False), help="Job records, uploads, artifacts.")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False), help="[default: $TFYOLO_API_TOKEN]")
@click.option("--broker", help="redis://host:port/db for workers on other machines [default: SQLite in --data-dir].")
@click.option("--workers", default=1, show_default=True, help="Worker processes started with the server (0: none).")
@click.option("--max-upload-mb", default=512, show_default=True)
@click.option("--dataset", "datasets", multiple=True, help="Register NAME=PATH (data.yaml or image folder).")
@user_errors
def serve_command(host, port, data_dir, token_file, broker, workers, max_upload_mb, datasets):
    """Serve the conversion API and web pages; jobs run in worker processes."""
    import uvicorn

    from tfyolo.service.app import ServiceConfig, create_app
    from tfyolo.service.security import load_token
    from tfyolo.service.store import register_datasets

    token = load_token(token_file)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    registered = register_datasets(data_dir, _parse_datasets(datasets))
    config = ServiceConfig(data_dir=data_dir, token=token, broker=broker, max_upload_bytes=max_upload_mb << 20)
    app = create_app(config)
    command = [sys.executable, "-m", "tfyolo", "worker", "--data-dir", data_dir] + (
        ["--broker", broker] if broker else []
    )
    processes = [subprocess.Popen(command) for _ in range(workers)]
    click.echo(
        f"tfyolo serve: http://{host}:{port} (API docs at /docs), data in {data_dir}, {workers} worker(s), "
        f"queue {'redis' if broker else 'SQLite'}, datasets {sorted(registered)}",
        err=True,
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


@click.command("worker")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False))
@click.option("--broker", help="redis://host:port/db, as given to `tfyolo serve`.")
@click.option(
    "--stale-seconds",
    default=60.0,
    show_default=True,
    help="A running job whose worker sent no heartbeat for this long is re-queued (once), then failed.",
)
@user_errors
def worker_command(data_dir, broker, stale_seconds):
    """Run queued jobs, one at a time; start several for parallel jobs (each is one process)."""
    from tfyolo.service.queue import make_huey
    from tfyolo.service.store import worker_name

    huey = make_huey(data_dir, broker)
    stop = threading.Event()
    threading.Thread(target=_sweep, args=(data_dir, huey, stale_seconds, stop), daemon=True).start()
    click.echo(f"tfyolo worker {worker_name()}: waiting for jobs ({'redis' if broker else 'SQLite'} queue)", err=True)
    try:
        huey.create_consumer(workers=1, worker_type="thread", periodic=False).run()
    finally:
        stop.set()
