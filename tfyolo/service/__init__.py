"""The conversion service: an HTTP face (FastAPI) over job records (SQLite) and a task queue (Huey). No pipeline
logic lives here: a worker runs each job with `tfyolo.jobs.run_job`."""
