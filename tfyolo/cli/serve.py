"""`tfyolo serve` (the HTTP API and pages, plus the workers it supervises) and `tfyolo worker` (runs queued jobs)."""

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import click

from tfyolo.cli.common import user_errors

STALE_SECONDS = 60.0


def _positive_seconds(context, parameter, value):
    if value <= 0:
        raise click.BadParameter(f"expected a number of seconds above 0, received {value}.")
    return value


stale_seconds_option = click.option(
    "--stale-seconds",
    default=STALE_SECONDS,
    show_default=True,
    callback=_positive_seconds,
    help="A running job whose worker sent no heartbeat for this long is re-queued (once), then failed.",
)


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


class WorkerSupervisor:
    """The worker processes `serve` starts: a dead one is replaced at once and its jobs are swept (re-queued once,
    then failed) without waiting for its heartbeat to go stale; all of them stop when `serve` stops.

    Each worker runs in a session of its own: the Ctrl-C a terminal sends to `serve`'s process group reaches `serve`
    alone, which stops its workers (SIGTERM: each stops its job and re-queues it, the attempt given back) instead of
    every worker taking the signal while `serve` still runs and replaces the ones that end. A worker dies with
    `serve` (--die-with-parent), that is with the thread that started it: the watching thread, which starts the
    replacements, therefore lasts until `stop` has seen every worker end."""

    def __init__(self, command, count, data_dir, huey):
        self.command, self.count, self.huey = command, count, huey
        from tfyolo.service.store import JobStore

        self.store = JobStore(data_dir)
        self.processes = []
        self.stop_event = threading.Event()
        self.stopped = threading.Event()
        self.lock = threading.Lock()  # held while a dead worker is replaced, so that `stop` sees the replacement

    def start(self):
        self.processes = [self._spawn() for _ in range(self.count)]
        threading.Thread(target=self._watch, daemon=True).start()

    def _spawn(self):
        return subprocess.Popen(self.command, start_new_session=True)

    def _watch(self):
        from tfyolo.processes import describe_exit
        from tfyolo.service.store import worker_name_of
        from tfyolo.service.worker import MAX_ATTEMPTS

        while not self.stopped.wait(1.0):
            for index, process in enumerate(self.processes):
                with self.lock:
                    if process.poll() is None or self.stop_event.is_set():
                        continue
                    how = describe_exit(process.returncode)
                    name = worker_name_of(process.pid)
                    for job_id in self.store.requeue_jobs_of(name, f"died ({how})", MAX_ATTEMPTS):
                        self.huey.run_job_task(job_id)
                    self.store.worker_gone(name)
                    click.echo(f"tfyolo serve: worker {process.pid} died ({how}); starting another", err=True)
                    self.processes[index] = self._spawn()

    def stop(self, timeout=30.0):
        with self.lock:
            self.stop_event.set()
        try:
            for process in self.processes:
                if process.poll() is None:
                    process.terminate()
            for process in self.processes:
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            self.stopped.set()


def _exit_on_sigterm(signum, frame):
    # uvicorn handles SIGTERM itself, then restores this handler and raises the signal again once it has shut
    # down: raising here (instead of the default action, which kills the process on the spot) lets `serve` stop
    # its workers before it exits.
    raise SystemExit(128 + signum)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--data-dir", required=True, type=click.Path(file_okay=False), help="Job records, uploads, artifacts.")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False), help="[default: $TFYOLO_API_TOKEN]")
@click.option("--broker", help="redis://host:port/db for workers on other machines [default: SQLite in --data-dir].")
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(0, 64), help="Worker processes to supervise."
)
@click.option("--max-upload-mb", default=512, show_default=True, type=click.IntRange(1, 1 << 20))
@click.option(
    "--max-pending-jobs",
    default=100,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Jobs queued or running at once; a submission past it is answered 429.",
)
@click.option("--dataset", "datasets", multiple=True, help="Register NAME=PATH (data.yaml or image folder).")
@stale_seconds_option
@user_errors
def serve_command(
    host, port, data_dir, token_file, broker, workers, max_upload_mb, max_pending_jobs, datasets, stale_seconds
):
    """Serve the conversion API and web pages; jobs run in the worker processes it supervises."""
    import uvicorn

    from tfyolo.service.app import ServiceConfig, create_app
    from tfyolo.service.queue import make_huey
    from tfyolo.service.security import load_token
    from tfyolo.service.store import JobStore, hold_data_dir, register_datasets
    from tfyolo.service.worker import job_memory_limit, stage_time_limit

    token = load_token(token_file)
    stage_time_limit(), job_memory_limit()  # checked before the workers start, which read them too
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    lock = hold_data_dir(data_dir)  # refuses a data dir that another live server holds
    registered = register_datasets(data_dir, _parse_datasets(datasets))
    config = ServiceConfig(
        data_dir=data_dir,
        token=token,
        broker=broker,
        max_upload_bytes=max_upload_mb << 20,
        max_pending_jobs=max_pending_jobs,
    )
    app = create_app(config)
    huey = make_huey(data_dir, broker)
    for job_id in JobStore(data_dir).queued_ids():  # recorded, then the server died before it enqueued them
        huey.run_job_task(job_id)
    command = [sys.executable, "-m", "tfyolo", "worker", "--data-dir", data_dir, "--stale-seconds", str(stale_seconds)]
    command += ["--die-with-parent", str(os.getpid())]
    command += ["--broker", broker] if broker else []
    supervisor = WorkerSupervisor(command, workers, data_dir, huey)
    stop_sweep = threading.Event()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    supervisor.start()
    threading.Thread(target=_sweep, args=(data_dir, huey, stale_seconds, stop_sweep), daemon=True).start()
    click.echo(
        f"tfyolo serve: http://{host}:{port} (API docs at /docs), data in {data_dir}, {workers} worker(s), "
        f"queue {'redis' if broker else 'SQLite'}, datasets {sorted(registered)}",
        err=True,
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the workers' orderly stop short
        stop_sweep.set()
        supervisor.stop()
        lock.close()


@click.command("worker")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False))
@click.option("--broker", help="redis://host:port/db, as given to `tfyolo serve`.")
@stale_seconds_option
@click.option("--die-with-parent", type=int, hidden=True, help="Set by `serve`, to its pid: stop when it dies.")
@user_errors
def worker_command(data_dir, broker, stale_seconds, die_with_parent):
    """Run queued jobs, one at a time; start several for parallel jobs (each is one process)."""
    from tfyolo.processes import die_with_parent as ask_for_death_with_parent
    from tfyolo.service.queue import make_huey
    from tfyolo.service.store import JobStore, worker_name
    from tfyolo.service.worker import GIB, MAX_ATTEMPTS, RUNNING, job_memory_limit, stage_time_limit, worker_heartbeat

    if die_with_parent is not None:
        ask_for_death_with_parent(die_with_parent)
    # A malformed $TFYOLO_STAGE_TIME_LIMIT or $TFYOLO_JOB_MEMORY_LIMIT is one line now, not a failed job later.
    limit, memory = stage_time_limit(), job_memory_limit()
    huey = make_huey(data_dir, broker)
    store = JobStore(data_dir)
    stop = threading.Event()
    threading.Thread(target=worker_heartbeat, args=(store, stop), daemon=True).start()
    threading.Thread(target=_sweep, args=(data_dir, huey, stale_seconds, stop), daemon=True).start()
    queue = "redis" if broker else "SQLite"
    click.echo(
        f"tfyolo worker {worker_name()}: waiting for jobs ({queue} queue, {limit:.0f} s per stage, "
        f"{memory / GIB:.1f} GiB per job)",
        err=True,
    )
    # Ctrl-C (SIGINT) stops the worker as SIGTERM does: Huey's graceful stop would wait for the running job to end,
    # hours maybe, and `serve` kills a worker that takes more than 30 s, which spends the job's attempt. The job's
    # process is in a session of its own (worker.start_job_process): the terminal's SIGINT does not reach it.
    consumer = huey.create_consumer(workers=1, worker_type="thread", periodic=False, shutdown_timeout=0)
    # ... and says so below, not as Huey's "Shutdown timeout of 0s elapsed" warning.
    logging.getLogger("huey.consumer").addFilter(lambda record: not record.getMessage().startswith("Shutdown timeout"))
    try:
        consumer.run()
    finally:
        # SIGTERM or SIGINT: stop the running job's process group and give its job back, the attempt with it. A
        # second Ctrl-C must not cut this short: the job would be left running under a gone worker, then swept as
        # lost, its attempt spent.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        RUNNING.stop_all()
        given_back = store.requeue_jobs_of(worker_name(), "stopped", MAX_ATTEMPTS, orderly=True)
        for job_id in given_back:
            huey.run_job_task(job_id)
        stop.set()
        store.worker_gone(worker_name())
        click.echo(f"tfyolo worker {worker_name()}: stopped; {len(given_back)} job(s) back in the queue", err=True)
