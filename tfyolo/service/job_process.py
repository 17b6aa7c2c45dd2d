"""`python -m tfyolo.service.job_process DATA_DIR JOB_ID WORKER_PID`: one job its worker has claimed, run in a
process group of its own (see `tfyolo.service.worker`). It dies with its worker (WORKER_PID, given by the worker:
read here, it could already be the pid of whoever adopted the process), and SIGTERM ends it through its `finally`
blocks, so the temporary files of a conversion are removed."""

import signal
import sys

from tfyolo.processes import die_with_parent


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    data_dir, job_id, worker_pid = (argv if argv is not None else sys.argv[1:])[:3]
    die_with_parent(int(worker_pid))
    signal.signal(signal.SIGTERM, _terminate)
    from tfyolo.service.worker import run_claimed_job

    run_claimed_job(data_dir, job_id)


if __name__ == "__main__":
    main()
