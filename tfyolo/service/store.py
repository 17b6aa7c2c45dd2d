"""Job records in SQLite and artifacts addressed by their sha256.

The database is the only shared state: the web process writes a record and enqueues its id; a worker claims the
record (one UPDATE that succeeds for exactly one claimer, so a message delivered twice never runs twice), reports
progress into it, and finishes it. SQLite in WAL mode lets readers and one writer work at once across processes.
"""

import json
import os
import re
import shutil
import socket
import sqlite3
import time
import uuid
from pathlib import Path

from tfyolo.io_utils import atomic_path

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = ("succeeded", "failed", "cancelled")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
WORK_FOLDER = "work"
DATASETS_FILE = "datasets.json"

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    state TEXT NOT NULL,
    stage TEXT NOT NULL DEFAULT '',
    progress REAL NOT NULL DEFAULT 0,
    spec TEXT NOT NULL,
    uploads TEXT NOT NULL,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    heartbeat REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    time REAL NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_job ON events (job_id, time);
CREATE TABLE IF NOT EXISTS workers (
    name TEXT PRIMARY KEY,
    started REAL NOT NULL,
    heartbeat REAL NOT NULL
);
"""


def worker_name_of(pid):
    return f"{socket.gethostname()}:{pid}"


def worker_name():
    return worker_name_of(os.getpid())


class DataDirHeld:
    """An exclusive lock on a data dir for the life of a server (`hold_data_dir`); `close` releases it."""

    def __init__(self, handle):
        self.handle = handle

    def close(self):
        self.handle.close()


def hold_data_dir(data_dir):
    """Locks `data_dir` for this server, or refuses when a live server holds it: two servers on one data dir would
    rewrite each other's registered datasets. The lock dies with its process, so a crash never leaves it held."""
    import fcntl

    from tfyolo.errors import ConfigError

    path = Path(data_dir) / "serve.lock"
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError(
            f"--data-dir {data_dir}: held by a live tfyolo serve ({holder}); stop it first, or give this server "
            "its own data dir (more workers for the same server: `tfyolo worker --data-dir ...`)."
        )
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return DataDirHeld(handle)


class JobStore:
    """Job records under `data_dir/jobs.db`; each job's files under `data_dir/jobs/<id>/`."""

    def __init__(self, data_dir):
        self.data_dir = Path(data_dir)
        (self.data_dir / "jobs").mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.executescript(SCHEMA)

    def _connect(self):
        connection = sqlite3.connect(self.data_dir / "jobs.db", timeout=30, isolation_level=None)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA busy_timeout=30000")
        return connection

    def _write(self, sql, parameters=()):
        connection = self._connect()
        try:
            return connection.execute(sql, parameters).rowcount
        finally:
            connection.close()

    def job_dir(self, job_id):
        if not JOB_ID.match(job_id or ""):
            raise KeyError(job_id)
        return self.data_dir / "jobs" / job_id

    def create(self, spec, uploads, job_id=None):
        """A queued job; `uploads` ({role: file name}) are files already in its folder. Returns the id."""
        job_id = job_id or uuid.uuid4().hex
        now = time.time()
        self._write(
            "INSERT INTO jobs (id, created, updated, state, spec, uploads) VALUES (?, ?, ?, 'queued', ?, ?)",
            (job_id, now, now, json.dumps(spec), json.dumps(uploads)),
        )
        self.event(job_id, "queued")
        return job_id

    def work_dir(self, job_id):
        """Where the job runs (`run_job`'s folder, with its report); uploads and plots sit beside it."""
        return self.job_dir(job_id) / WORK_FOLDER

    def new_job_dir(self):
        """A fresh id and its own folder: concurrent jobs never share a working folder."""
        job_id = uuid.uuid4().hex
        folder = self.job_dir(job_id)
        folder.mkdir()
        return job_id, folder

    def event(self, job_id, text):
        self._write("INSERT INTO events (job_id, time, text) VALUES (?, ?, ?)", (job_id, time.time(), text))

    def events(self, job_id):
        connection = self._connect()
        try:
            rows = connection.execute("SELECT time, text FROM events WHERE job_id = ? ORDER BY time", (job_id,))
            return [dict(row) for row in rows]
        finally:
            connection.close()

    def get(self, job_id):
        connection = self._connect()
        try:
            row = connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        finally:
            connection.close()
        return None if row is None else _record(row)

    def list(self, limit=100):
        connection = self._connect()
        try:
            rows = connection.execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        finally:
            connection.close()
        return [_record(row) for row in rows]

    def pending_count(self):
        """Jobs queued or running."""
        connection = self._connect()
        try:
            row = connection.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')").fetchone()
        finally:
            connection.close()
        return int(row[0])

    def queued_ids(self):
        """Every queued job, oldest first: `serve` enqueues them again when it starts, because a server killed between
        a job's record and its enqueue left the job queued with no task (a second task for a job is harmless: only
        one `claim` succeeds)."""
        connection = self._connect()
        try:
            rows = connection.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY created").fetchall()
        finally:
            connection.close()
        return [row["id"] for row in rows]

    def claim(self, job_id, worker):
        """queued -> running for exactly one worker; False when the job is not queued (cancelled, already taken)."""
        now = time.time()
        claimed = self._write(
            "UPDATE jobs SET state = 'running', worker = ?, heartbeat = ?, updated = ?, attempts = attempts + 1, "
            "stage = 'starting', progress = 0 WHERE id = ? AND state = 'queued'",
            (worker, now, now, job_id),
        )
        if claimed:
            self.event(job_id, f"running on {worker}")
        return bool(claimed)

    def report_progress(self, job_id, stage=None, progress=None):
        """Heartbeat (and stage/progress when given); returns True when cancellation was requested."""
        now = time.time()
        self._write(
            "UPDATE jobs SET heartbeat = ?, updated = ?, stage = COALESCE(?, stage), "
            "progress = COALESCE(?, progress) WHERE id = ? AND state = 'running'",
            (now, now, stage, progress, job_id),
        )
        record = self.get(job_id)
        return bool(record and record["cancel_requested"])

    def finish(self, job_id, state, error=None):
        if state not in FINAL_STATES:
            raise ValueError(state)
        self._write(
            "UPDATE jobs SET state = ?, error = ?, updated = ?, progress = "
            "CASE WHEN ? = 'succeeded' THEN 1 ELSE progress END WHERE id = ? AND state = 'running'",
            (state, error, time.time(), state, job_id),
        )
        self.event(job_id, state + (f": {error}" if error else ""))

    def cancel(self, job_id):
        """A queued job is cancelled at once; a running one is asked to stop at its next step. Returns the state."""
        now = time.time()
        if self._write(
            "UPDATE jobs SET state = 'cancelled', error = 'cancelled before it started', updated = ? "
            "WHERE id = ? AND state = 'queued'",
            (now, job_id),
        ):
            self.event(job_id, "cancelled before it started")
            return "cancelled"
        if self._write(
            "UPDATE jobs SET cancel_requested = 1, updated = ? WHERE id = ? AND state = 'running'", (now, job_id)
        ):
            self.event(job_id, "cancel requested")
        record = self.get(job_id)
        return record["state"] if record else None

    def requeue_lost(self, stale_seconds, max_attempts):
        """Jobs whose worker stopped sending heartbeats (killed, machine lost): re-queued while they have attempts
        left, failed with the reason after that. Returns the ids to enqueue again."""
        cutoff = time.time() - stale_seconds
        lost = self._running_where("heartbeat < ?", (cutoff,))
        why = "worker {worker} stopped during '{stage}' (no heartbeat for %.0f s)" % stale_seconds
        return [job_id for job_id in (self._release(row, why, max_attempts) for row in lost) if job_id]

    def requeue_jobs_of(self, worker, why, max_attempts, orderly=False):
        """The running jobs of `worker`, known to be gone (its process exited, or it is stopping): the same rule as
        `requeue_lost`, at once. `orderly`: the worker was told to stop (SIGTERM, a restart): its jobs are re-queued
        and the attempt is given back, so restarts never fail a healthy job. Returns the ids to enqueue again."""
        lost = self._running_where("worker = ?", (worker,))
        reason = "worker {worker} " + why + " during '{stage}'"
        return [job_id for job_id in (self._release(row, reason, max_attempts, orderly) for row in lost) if job_id]

    def _running_where(self, condition, parameters):
        connection = self._connect()
        try:
            return connection.execute(
                f"SELECT id, worker, stage, attempts, heartbeat FROM jobs WHERE state = 'running' AND {condition}",
                parameters,
            ).fetchall()
        finally:
            connection.close()

    def _release(self, row, why, max_attempts, orderly=False):
        """Re-queues (returns its id) or fails one running job whose worker is gone; the job's heartbeat must
        still be the one that was read (no other worker took it meanwhile). An orderly stop does not count as an
        attempt."""
        why = why.format(worker=row["worker"], stage=row["stage"])
        guard = "WHERE id = ? AND state = 'running' AND worker IS ? AND heartbeat IS ?"
        parameters = (row["id"], row["worker"], row["heartbeat"])
        if orderly or row["attempts"] < max_attempts:
            given_back = 1 if orderly else 0
            if self._write(
                "UPDATE jobs SET state = 'queued', stage = '', progress = 0, worker = NULL, updated = ?, "
                "attempts = attempts - ? " + guard,
                (time.time(), given_back, *parameters),
            ):
                self.event(row["id"], f"re-queued: {why}")
                return row["id"]
        elif self._write(
            "UPDATE jobs SET state = 'failed', error = ?, updated = ? " + guard,
            (f"{why}; gave up after {row['attempts']} attempt(s)", time.time(), *parameters),
        ):
            self.event(row["id"], f"failed: {why}")
        return None

    # === Workers ===
    def worker_alive(self, worker):
        """Records (or refreshes) the heartbeat of a worker process."""
        now = time.time()
        self._write(
            "INSERT INTO workers (name, started, heartbeat) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET heartbeat = excluded.heartbeat",
            (worker, now, now),
        )

    def worker_gone(self, worker):
        self._write("DELETE FROM workers WHERE name = ?", (worker,))

    def live_workers(self, within_seconds):
        """Names of the workers that sent a heartbeat within `within_seconds`."""
        connection = self._connect()
        try:
            rows = connection.execute(
                "SELECT name FROM workers WHERE heartbeat >= ? ORDER BY name", (time.time() - within_seconds,)
            ).fetchall()
        finally:
            connection.close()
        return [row["name"] for row in rows]

    def stage_of(self, job_id):
        record = self.get(job_id)
        return record["stage"] if record else ""


def _record(row):
    record = dict(row)
    record["spec"] = json.loads(record["spec"])
    record["uploads"] = json.loads(record["uploads"])
    return record


class ArtifactStore:
    """Files under `data_dir/artifacts/<sha256>`, written atomically; the same content is stored once."""

    def __init__(self, data_dir):
        self.root = Path(data_dir) / "artifacts"
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, path, sha256):
        target = self.root / sha256
        if not target.is_file():
            with atomic_path(target) as temporary:
                shutil.copyfile(path, temporary)
        return target

    def path(self, sha256):
        """The stored file, or None; anything but 64 lowercase hex digits is refused before touching the disk."""
        if not SHA256.match(sha256 or ""):
            return None
        target = self.root / sha256
        return target if target.is_file() else None


def registered_datasets(data_dir):
    """{name: path} of the datasets the server's operator registered (`tfyolo serve --dataset NAME=PATH`): uploads
    may name these, never a path of their own."""
    path = Path(data_dir) / DATASETS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def register_datasets(data_dir, datasets):
    """Adds {name: path} to the datasets the server offers; returns all of them."""
    from tfyolo.io_utils import atomic_write_json

    registered = registered_datasets(data_dir) | {name: str(Path(path).resolve()) for name, path in datasets.items()}
    atomic_write_json(Path(data_dir) / DATASETS_FILE, registered)
    return registered
