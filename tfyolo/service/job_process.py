"""`python -m tfyolo.service.job_process DATA_DIR JOB_ID`: one job its worker has claimed, run in a process group of
its own (see `tfyolo.service.worker`). It dies with its worker, and SIGTERM ends it through its `finally` blocks, so
the temporary files of a conversion are removed."""

import signal
import sys

from tfyolo.processes import die_with_parent


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    data_dir, job_id = (argv if argv is not None else sys.argv[1:])[:2]
    die_with_parent()
    signal.signal(signal.SIGTERM, _terminate)
    from tfyolo.service.worker import run_claimed_job

    run_claimed_job(data_dir, job_id)


if __name__ == "__main__":
    main()
