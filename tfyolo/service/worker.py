"""Where a job runs: a worker process claims the job's record, then runs the job in a job process of its own
(`tfyolo.service.job_process`, a new process group), which runs it with `run_job` in the job's folder, stores its
artifacts by content and finishes the record: succeeded, failed with a one-line reason, or cancelled.

The job process makes cancel immediate whatever the job is doing (a conversion, a QuantizationDebugger pass, a
training step): the worker signals its whole process group, conversion children included, and records the stage
it stopped in. A worker that stops (SIGTERM, Ctrl-C) stops its jobs the same way and re-queues them; one that dies
(SIGKILL) takes its job processes with it (they die with their parent) and its jobs are swept: by the server that
supervises it at once, by any worker after `stale_seconds` without a heartbeat. A job is re-queued once and failed
with the reason when it is lost again.
"""

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from tfyolo.errors import ConfigError, ModelError, one_line
from tfyolo.jobs.progress import JobCancelled, Progress
from tfyolo.jobs.spec import JobSpec
from tfyolo.processes import describe_exit, stop_process_group, tree_resident_bytes
from tfyolo.service.store import ArtifactStore, JobStore, registered_datasets, worker_name

HEARTBEAT_SECONDS = 2.0
MAX_ATTEMPTS = 2
# A worker whose last heartbeat is older than this is not counted as live (/readyz).
LIVE_WORKER_SECONDS = 3 * HEARTBEAT_SECONDS + 1
POLL_SECONDS = 0.25
# A job stage (importing, converting int8, evaluating, an epoch of training) that runs longer than this is stopped and
# the job failed: a hostile file that sends a reader into a loop must not hold a worker for ever while /readyz says
# ready. Real stages take minutes on 2 CPU cores; the operator sets the limit through this variable (seconds).
STAGE_TIME_LIMIT_VARIABLE = "TFYOLO_STAGE_TIME_LIMIT"
DEFAULT_STAGE_TIME_LIMIT_SECONDS = 4 * 3600
# The resident memory a job's processes may hold together, in GiB: a hostile file that makes a reader allocate (a
# decompression bomb, a tensor view that materializes gigabytes) is stopped before it takes the machine, whatever
# reader it found. An address-space rlimit cannot do it: TensorFlow reserves far more address space than it uses.
# The default, 3/4 of the machine's memory, leaves the web process and the other workers room.
JOB_MEMORY_LIMIT_VARIABLE = "TFYOLO_JOB_MEMORY_LIMIT"
DEFAULT_JOB_MEMORY_SHARE = 0.75
GIB = 1 << 30


class StoreProgress(Progress):
    """Progress into the job's record, at most a few writes a second; raises JobCancelled once cancel was asked."""

    def __init__(self, store, job_id):
        self.store, self.job_id = store, job_id
        self.name, self.total, self.done, self.last_write = "", 1, 0, 0.0

    def message(self, text):
        self.store.event(self.job_id, text.strip())
        self._write(force=True)

    def stage(self, name, total, unit="img"):
        self.name, self.total, self.done = name, max(int(total), 1), 0
        self._write(force=True)

    def advance(self, steps=1):
        self.done += steps
        self._write()

    def _write(self, force=False):
        now = time.monotonic()
        if not force and now - self.last_write < 0.5:
            return
        self.last_write = now
        if self.store.report_progress(self.job_id, self.name, min(self.done / self.total, 1.0)):
            raise JobCancelled(f"cancelled during '{self.name}'")


# The images each job kind reads besides its model. The service names every one itself, from the job's uploads and
# the datasets the operator registered: a source left unnamed would make the library fall back to the path the
# model's own metadata names, which in an upload is whatever its sender wrote (a server file the job would open).
IMAGE_SOURCES = {"convert": ("data", "calibration"), "evaluate": ("data",), "bench": (), "bundle": ("calibration",)}


def resolve_spec(store, record, folder):
    """The record's spec with its uploads and registered datasets turned into paths on this machine, every image
    source its kind reads named (`IMAGE_SOURCES`)."""
    values = dict(record["spec"])
    uploads = record["uploads"]
    values["model"] = str(folder / "uploads" / uploads["model"])
    if "calibration" in uploads:
        values["calibration"] = str(folder / "uploads" / uploads["calibration"])
    for field in ("calibration", "data"):
        dataset = values.pop(f"{field}_dataset", None)
        if dataset:
            values[field] = str(registered_dataset(store.data_dir, dataset))
    return name_image_sources(values)


def name_image_sources(values):
    """`values` with each image source of its kind named: calibration defaults to what the library picks for a model
    that names no dataset (the evaluation data's train split, else the built-in synthetic set); evaluation data has
    no default (the upload was refused without it)."""
    from tfyolo.quantization.recipes_dir import DEFAULT_CALIBRATION

    kind = values.get("kind", "convert")
    needed = IMAGE_SOURCES[kind]
    if "calibration" in needed and not values.get("calibration"):
        values["calibration"] = values.get("data") or str(DEFAULT_CALIBRATION)
    if "data" in needed and not values.get("data"):
        raise ModelError(f"a {kind} job evaluates on a registered dataset, and this one names none (data_dataset).")
    return values


def registered_dataset(data_dir, name):
    """The path the server's operator registered under `name`: a data.yaml, or an image folder (a folder holding a
    data.yaml means that file)."""
    registered = registered_datasets(data_dir)
    if name not in registered:
        raise ModelError(f"dataset {name!r}: not registered on this server; registered: {sorted(registered)}.")
    path = Path(registered[name])
    return path / "data.yaml" if path.is_dir() and (path / "data.yaml").is_file() else path


def run_claimed_job(data_dir, job_id):
    """Runs a job this process's worker has claimed, to its end: the body of the job process."""
    from tfyolo.jobs.run import run_job
    from tfyolo.plots import plot_job

    store, artifacts = JobStore(data_dir), ArtifactStore(data_dir)
    folder = store.job_dir(job_id)
    progress = StoreProgress(store, job_id)
    try:
        record = store.get(job_id)
        values = resolve_spec(store, record, folder)
        spec = JobSpec.from_dict(values, source=f"job {job_id}")
        report = run_job(spec, store.work_dir(job_id), progress=progress)
        progress.stage("storing artifacts", len(report.artifacts), unit="file")
        stored = []
        for artifact in report.artifacts:
            stored.append(artifacts.put(artifact.path, artifact.sha256))
            progress.advance()
        plot_job(report.to_dict(), folder)
        store.event(job_id, f"stored {len(stored)} artifact(s)")
        verdict = report.verdict
        store.finish(
            job_id,
            "succeeded" if verdict.passed is not False else "failed",
            error=None if verdict.passed is not False else f"gate: {verdict.reason}",
        )
    except JobCancelled as cancelled:
        store.finish(job_id, "cancelled", error=str(cancelled))
    except Exception as error:
        store.finish(job_id, "failed", error=one_line(error))


class _RunningJobs:
    """The job processes of this worker process, so that its shutdown can stop them and re-queue their jobs."""

    def __init__(self):
        self.lock = threading.Lock()
        self.processes = {}
        self.stopping = False

    def add(self, job_id, process):
        with self.lock:
            if self.stopping:
                return False
            self.processes[job_id] = process
            return True

    def remove(self, job_id):
        with self.lock:
            self.processes.pop(job_id, None)

    def stop_all(self):
        with self.lock:
            self.stopping = True
            processes = list(self.processes.values())
        for process in processes:
            stop_process_group(process)


RUNNING = _RunningJobs()


def job_process_command(data_dir, job_id):
    """The command line of the job's process, which dies with this worker (its pid, given from here)."""
    return [sys.executable, "-m", "tfyolo.service.job_process", str(data_dir), job_id, str(os.getpid())]


def start_job_process(data_dir, job_id, temporary):
    """`job_process_command` for the job, with its temporary files inside the job's folder, in a new session: its
    own process group, so that the Ctrl-C a terminal sends to the worker's group reaches the worker alone, and the
    worker's orderly stop decides the job's fate (stopped, re-queued with its attempt given back). The job process
    asks to die with its worker first thing (`tfyolo.service.job_process`)."""
    temporary.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ, TMPDIR=str(temporary))
    return subprocess.Popen(job_process_command(data_dir, job_id), start_new_session=True, env=environment)


def execute_job(data_dir, job_id, in_process=False):
    """Runs one queued job to its end; does nothing when another worker has it or it was cancelled.

    in_process: run the job in this process (tests of the job's own logic); the service always uses a job process.
    """
    store = JobStore(data_dir)
    if not store.claim(job_id, worker_name()):
        return
    if in_process:
        run_claimed_job(data_dir, job_id)
        return
    temporary = store.job_dir(job_id) / "tmp"
    process = start_job_process(data_dir, job_id, temporary)
    if not RUNNING.add(job_id, process):
        stop_process_group(process)
        return
    try:
        _supervise(store, job_id, process)
    finally:
        RUNNING.remove(job_id)
        shutil.rmtree(temporary, ignore_errors=True)


def _positive_setting(variable, unit):
    """The number in environment variable `variable` (None when unset), or one ConfigError line naming `unit`."""
    value = os.environ.get(variable, "").strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0:  # nan too
        raise ConfigError(f"${variable}: expected a number of {unit} above 0, received {value!r}.")
    return number


def stage_time_limit():
    """Seconds one stage of a job may run: $TFYOLO_STAGE_TIME_LIMIT, or DEFAULT_STAGE_TIME_LIMIT_SECONDS."""
    seconds = _positive_setting(STAGE_TIME_LIMIT_VARIABLE, "seconds")
    return DEFAULT_STAGE_TIME_LIMIT_SECONDS if seconds is None else seconds


def job_memory_limit():
    """Bytes a job's processes may hold resident together: $TFYOLO_JOB_MEMORY_LIMIT (GiB), or
    DEFAULT_JOB_MEMORY_SHARE of the machine's memory."""
    import psutil

    gib = _positive_setting(JOB_MEMORY_LIMIT_VARIABLE, "GiB")
    return int(DEFAULT_JOB_MEMORY_SHARE * psutil.virtual_memory().total) if gib is None else int(gib * GIB)


def _supervise(store, job_id, process):
    """Heartbeats for the job while its process runs; on cancel, when one stage runs past stage_time_limit(), or
    when the job's processes hold more memory than job_memory_limit(), stops the process group and records the stage
    it was in; when the process ends without finishing the record, fails the job with how it ended."""
    limit, memory_limit = stage_time_limit(), job_memory_limit()
    last_heartbeat, stage, stage_started = 0.0, None, time.monotonic()
    while process.poll() is None:
        resident = tree_resident_bytes(process.pid)
        if resident > memory_limit:
            stop_process_group(process)
            store.finish(
                job_id,
                "failed",
                error=f"stopped: the job's processes held {resident / GIB:.1f} GiB during '{store.stage_of(job_id)}', "
                f"over this server's limit of {memory_limit / GIB:.1f} GiB (${JOB_MEMORY_LIMIT_VARIABLE})",
            )
            return
        now = time.monotonic()
        if now - last_heartbeat >= HEARTBEAT_SECONDS:
            last_heartbeat = now
            cancelled = store.report_progress(job_id)
            current = store.stage_of(job_id)
            if current != stage:
                stage, stage_started = current, now
            if cancelled or now - stage_started > limit:
                stop_process_group(process)
                if cancelled:
                    store.finish(job_id, "cancelled", error=f"cancelled during '{stage}'")
                else:
                    store.finish(
                        job_id,
                        "failed",
                        error=f"stopped: '{stage}' ran longer than this server's limit of {limit:.0f} s per stage "
                        f"(${STAGE_TIME_LIMIT_VARIABLE})",
                    )
                return
        time.sleep(POLL_SECONDS)
    if RUNNING.stopping:
        return  # the worker is stopping: it re-queues this job itself
    record = store.get(job_id)
    if record and record["state"] == "running":
        store.finish(
            job_id,
            "failed",
            error=f"the job process ended ({describe_exit(process.returncode)}) during '{record['stage']}'",
        )


def worker_heartbeat(store, stop, name=None):
    """The worker's own heartbeat (`/readyz` counts the live ones), until `stop` is set."""
    name = name or worker_name()
    while True:
        store.worker_alive(name)
        if stop.wait(HEARTBEAT_SECONDS):
            store.worker_gone(name)
            return
