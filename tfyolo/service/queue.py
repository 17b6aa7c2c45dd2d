"""The task queue: Huey, with its SQLite storage by default (one file beside the job records) or Redis as the
broker when workers run on other machines (`--broker redis://host:6379/0`). A message carries only a job id;
everything else is in the job's record and folder."""

from pathlib import Path

from tfyolo.errors import ConfigError

QUEUE_NAME = "tfyolo-jobs"


def make_huey(data_dir, broker=None):
    """The Huey instance for `data_dir` (SQLite) or `broker` (redis://...), with the job task registered."""
    from huey import RedisHuey, SqliteHuey

    if broker is None:
        # results=False: outcomes live in the job records; Huey only carries the ids.
        huey = SqliteHuey(QUEUE_NAME, filename=str(Path(data_dir) / "queue.db"), results=False)
    elif broker.startswith(("redis://", "rediss://", "unix://")):
        huey = RedisHuey(QUEUE_NAME, url=broker, results=False)
    else:
        raise ConfigError(f"--broker: expected redis://host:port/db (or none for SQLite), received {broker!r}.")

    @huey.task(name="run_job")
    def run_job_task(job_id):
        from tfyolo.service.worker import execute_job

        execute_job(data_dir, job_id)

    huey.run_job_task = run_job_task
    return huey
