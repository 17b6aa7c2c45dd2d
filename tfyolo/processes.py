"""Child processes that never outlive the process that started them, and stop when they are told to.

A job in the service runs in a process group of its own (the job process, and the conversion processes it
spawns): cancelling it, or stopping its worker, signals the whole group. A child also asks the kernel for SIGKILL
when its parent dies (Linux' PR_SET_PDEATHSIG), so a worker killed with SIGKILL leaves no orphan behind.
"""

import contextlib
import functools
import os
import signal
import threading

PR_SET_PDEATHSIG = 1


def die_with_parent(parent):
    """Linux: this process receives SIGKILL when the thread that started it ends; elsewhere, nothing.

    parent: the pid of the process that started this one, known to the caller from before this process ran (its
    command line, `multiprocessing.parent_process()`, the parent's own `os.getpid()` bound before a fork). Read
    here instead, it would be the pid of whoever adopted this process had the parent died before the request took
    effect: the check below would pass and the process would be orphaned."""
    _request_death_with(parent, _prctl())


def death_with_this_process():
    """A `preexec_fn` for subprocess: the child dies with this process. libc's prctl is looked up here, before the
    fork: dlopen in the forked child of a process with threads (TensorFlow's) can wait for ever on a loader lock
    another thread held at the fork."""
    parent, prctl = os.getpid(), _prctl()
    return functools.partial(_request_death_with, parent, prctl)


def _prctl():
    """libc's prctl, or None where there is none (not Linux)."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _request_death_with(parent, prctl):
    if prctl is None or prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def die_with_multiprocessing_parent():
    """`die_with_parent` for a child started by `multiprocessing`."""
    import multiprocessing

    die_with_parent(multiprocessing.parent_process().pid)


def stop_process_group(process, grace_seconds=5.0):
    """SIGTERM to the process group `process` leads (started with start_new_session), SIGKILL after the grace;
    returns its exit code."""
    for signum, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, grace_seconds)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)
        try:
            return process.wait(timeout=wait)
        except Exception:  # subprocess.TimeoutExpired: escalate
            continue
    return process.poll()


@contextlib.contextmanager
def children_ignore_sigint():
    """Children started inside the block inherit SIGINT ignored (Python keeps an ignored SIGINT at start-up): a
    Ctrl-C reaches the parent alone, which stops them, instead of every child printing its own traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def describe_exit(code):
    """'exit code 1' or 'killed by SIGKILL' for a Popen / multiprocessing exit code."""
    if code is None:
        return "still running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def tree_resident_bytes(pid):
    """Resident memory of process `pid` and every process below it (a job process and its conversion or Vela
    children), in bytes; 0 once it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in tree:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue  # ended between the listing and the reading
    return total
