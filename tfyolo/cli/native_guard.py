"""The console scripts run their command in a child process, so that a native crash is one line.

TensorFlow, LiteRT and TFLite Micro are C++ that trusts the files it reads: a malformed model can end the process by
SIGSEGV or SIGABRT, which no Python handler survives. The commands check a named `.tflite` in a child first
(`tfyolo.tflite_runtime.check_in_child`), but a crash that only real inputs or a particular heap trigger gets past
that check. So `tfyolo` and `tfyolo-eval` start the command itself in a child (the same interpreter, arguments,
standard streams, open descriptors and process group) and wait: a child killed by a crash signal is reported in one
line naming the command, and any other ending is passed on as it came. This module imports nothing of tfyolo's, so
the parent costs one Python start-up (tens of milliseconds) and no TensorFlow. On Linux the child also dies with the
parent (`tfyolo.processes.die_with_parent`): a `kill -9` of the script ends its work.

`tfyolo serve` and `tfyolo worker` run in place: they manage their own processes and signals (`tfyolo.cli.serve`),
and a crashing job there is already contained in its job process."""

import os
import shlex
import signal
import subprocess
import sys
import time

# Set in the child: the command runs in place there.
GUARDED = "TFYOLO_GUARDED"
# Signals by which native code ends a process it cannot go on with (SIGTRAP: a compiler's trap on aarch64; SIGSYS:
# a system call a sandbox forbids).
CRASHES = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGTRAP, signal.SIGSYS}
IN_PLACE_COMMANDS = {"serve", "worker"}
# Signals sent to the script that its command must receive. The terminal's Ctrl-C reaches both already, as they
# share the process group, so a SIGINT is passed on only when it cannot have come from the terminal.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# With no terminal in front, a program that interrupts the whole process group reaches the command twice: directly
# and through the script. A second SIGINT this soon after the first is that copy, and is dropped in the command.
REPEATED_INTERRUPT_S = 1.0


def tfyolo():
    """The `tfyolo` console script."""
    in_place = _subcommand(sys.argv[1:]) in IN_PLACE_COMMANDS
    _guarded("tfyolo", "tfyolo.cli.main", "main", in_place)


def tfyolo_eval():
    """The `tfyolo-eval` console script."""
    _guarded("tfyolo-eval", "tfyolo.cli.evaluate", "entry", in_place=False)


def _guarded(program, module, function, in_place):
    arguments = sys.argv[1:]
    if in_place or os.environ.get(GUARDED) == "1":
        import importlib

        getattr(importlib.import_module(module), function)()
        return
    # Handlers before the child exists, so that no signal finds this process undefended; a handled signal is back
    # to its default in the child (exec resets it), an ignored one would stay ignored there.
    child, pending = None, []

    def forward(signum, frame):
        if signum == signal.SIGINT and _terminal_in_front():
            return  # the terminal sent it to the child too
        if child is None:
            pending.append(signum)
        else:
            child.send_signal(signum)

    for signum in FORWARDED:
        # An ignored signal stays ignored, here and in the command (`nohup`, a shell's background job): a handler
        # would be reset to the default in the child by exec, and the command would die of the hangup it escaped.
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, forward)
    # -P: the working directory is not put on the child's import path (a `yaml.py` in a dataset folder is not
    # imported), as it is not on a console script's. The child names itself after argv[0] in click's messages.
    run = f"import sys; sys.argv[0] = {program!r}; from tfyolo.processes import die_with_parent; "
    run += f"die_with_parent({os.getpid()}); from tfyolo.cli.native_guard import interrupt_once; interrupt_once(); "
    run += f"from {module} import {function}; {function}()"
    command = [sys.executable, "-P", "-c", run, *arguments]
    child = subprocess.Popen(command, env={**os.environ, GUARDED: "1"}, close_fds=False)
    for signum in pending:
        child.send_signal(signum)
    sys.exit(exit_status(program, arguments, child.wait()))


def interrupt_once(window_s=REPEATED_INTERRUPT_S):
    """In the command's process: a SIGINT raises KeyboardInterrupt, as Python's own handler does, and a SIGINT
    within `window_s` of the last one taken is dropped, so that the copy the script forwards cannot interrupt the
    clean-up (an atomic write's temporary file removed, a job's state saved) that the first one started. An ignored
    SIGINT (a command started in the background) stays ignored."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return
    taken = [-float("inf")]

    def interrupt(signum, frame):
        now = time.monotonic()
        if now - taken[0] < window_s:
            return
        taken[0] = now
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)


def _subcommand(arguments):
    """The first argument that is not an option: `tfyolo`'s subcommand (its own options take no values)."""
    return next((argument for argument in arguments if not argument.startswith("-")), None)


def _terminal_in_front():
    """Whether this process's group is the foreground group of its controlling terminal: where a Ctrl-C comes from."""
    try:
        descriptor = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(descriptor) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(descriptor)


def exit_status(program, arguments, code):
    """The parent's exit status for a child that ended with `code` (Popen's: negative for a signal), after printing
    one line for a crash or a kill from outside. A child ended by another signal (SIGINT, SIGTERM, SIGHUP) ends this
    process by the same signal, as a shell expects of an interrupted command; it said what it had to say itself."""
    if code >= 0:
        return code
    signum = -code
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    command = shlex.join([program, *arguments]).replace("\n", "\\n")  # one line, whatever the file names hold
    if signum in CRASHES:
        print(
            f"{command}: crashed in native code ({name}): TensorFlow, LiteRT or TFLite Micro could not go on with "
            "a file it read, which is malformed or beyond what it can run.",
            file=sys.stderr,
        )
        return 1
    if signum == signal.SIGKILL:
        print(f"{command}: killed (SIGKILL): out of memory, or stopped from outside.", file=sys.stderr)
        return 128 + signum
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return 128 + signum  # a signal this process cannot take by default (none of the above)
