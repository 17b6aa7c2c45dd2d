"""Where a job runs: a worker process claims the job's record, runs it with `run_job` in the job's own folder,
stores its artifacts by content, and finishes the record: succeeded, failed with a one-line reason, or cancelled.

A worker that dies mid-job stops sending heartbeats; the next sweep (any worker, or the server at start) re-queues
the job once, and fails it with the reason when it was already retried.
"""

import threading
import time
from pathlib import Path

from tfyolo.errors import ModelError, one_line
from tfyolo.io_utils import atomic_write_json
from tfyolo.jobs.progress import JobCancelled, Progress
from tfyolo.jobs.spec import JobSpec
from tfyolo.service.store import WORK_FOLDER, ArtifactStore, JobStore, registered_datasets, worker_name

HEARTBEAT_SECONDS = 2.0
MAX_ATTEMPTS = 2


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


def _heartbeat(store, job_id, stop):
    while not stop.wait(HEARTBEAT_SECONDS):
        store.report_progress(job_id)


def resolve_spec(store, record, folder):
    """The record's spec with its uploads and registered datasets turned into paths on this machine."""
    values = dict(record["spec"])
    uploads = record["uploads"]
    values["model"] = str(folder / "uploads" / uploads["model"])
    if "calibration" in uploads:
        values["calibration"] = str(folder / "uploads" / uploads["calibration"])
    for field in ("calibration", "data"):
        dataset = values.pop(f"{field}_dataset", None)
        if dataset:
            values[field] = str(registered_dataset(store.data_dir, dataset))
    return values


def registered_dataset(data_dir, name):
    """The path the server's operator registered under `name`: a data.yaml, or an image folder (a folder holding a
    data.yaml means that file)."""
    registered = registered_datasets(data_dir)
    if name not in registered:
        raise ModelError(f"dataset {name!r}: not registered on this server; registered: {sorted(registered)}.")
    path = Path(registered[name])
    return path / "data.yaml" if path.is_dir() and (path / "data.yaml").is_file() else path


def import_upload(values, folder, progress):
    """A .pt checkpoint or .onnx export is imported first (the .pt through the restricted unpickler only)."""
    from tfyolo.importers.ultralytics_import import import_weights
    from tfyolo.models.model_io import METADATA_NAME, save_model_atomic

    source = Path(values["model"])
    progress.message(f"importing {source.name} (Ultralytics {source.suffix})")
    model, metadata = import_weights(source)
    target = folder / WORK_FOLDER / "imported" / (source.stem + ".keras")
    target.parent.mkdir(parents=True, exist_ok=True)
    save_model_atomic(model, target)
    atomic_write_json(target.parent / METADATA_NAME, metadata)
    return dict(values, model=str(target))


def execute_job(data_dir, job_id):
    """Runs one queued job to its end; does nothing when another worker has it or it was cancelled."""
    from tfyolo.jobs.run import run_job
    from tfyolo.plots import plot_job

    store, artifacts = JobStore(data_dir), ArtifactStore(data_dir)
    if not store.claim(job_id, worker_name()):
        return
    stop = threading.Event()
    threading.Thread(target=_heartbeat, args=(store, job_id, stop), daemon=True).start()
    folder = store.job_dir(job_id)
    progress = StoreProgress(store, job_id)
    try:
        record = store.get(job_id)
        values = resolve_spec(store, record, folder)
        if values.pop("import_weights", False):
            values = import_upload(values, folder, progress)
        spec = JobSpec.from_dict(values, source=f"job {job_id}")
        report = run_job(spec, store.work_dir(job_id), progress=progress)
        stored = [artifacts.put(artifact.path, artifact.sha256) for artifact in report.artifacts]
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
    finally:
        stop.set()
