"""The console scripts run their command in a child process, so that a native crash is one line.

TensorFlow, LiteRT and TFLite Micro are C++ that trusts the files it reads: a malformed model can end the process by
SIGSEGV or SIGABRT, which no Python handler survives. The commands check a named `.tflite` in a child first
(`tfyolo.tflite_runtime.check_in_child`), but a crash that only real inputs or a particular heap trigger gets past
that check. So `tfyolo` and `tfyolo-eval` start the command itself in a child (the same interpreter, arguments,
standard streams and process group) and wait: a child killed by a crash signal is reported in one line naming the
command, and any other ending is passed on as it came. This module imports nothing of tfyolo's, so the parent costs
one Python start-up (tens of milliseconds) and no TensorFlow. The child dies with the parent.

`serve` and `worker` run in place: they manage their own processes and signals (`tfyolo.cli.serve`), and a crashing
job there is already contained in its job process."""

import os
import signal
import subprocess
import sys

# Set in the child: the command runs in place there.
GUARDED = "TFYOLO_GUARDED"
# Signals by which native code ends a process it cannot go on with.
CRASHES = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}
IN_PLACE_COMMANDS = {"serve", "worker"}
# Signals sent to the parent from outside (a service manager, `kill`) that the child must receive: the terminal's
# SIGINT reaches both already, as they share the process group.
FORWARDED = (signal.SIGTERM, signal.SIGHUP)


def tfyolo():
    """The `tfyolo` console script."""
    _guarded("tfyolo", "tfyolo.cli.main", "main")


def tfyolo_eval():
    """The `tfyolo-eval` console script."""
    _guarded("tfyolo-eval", "tfyolo.cli.evaluate", "entry")


def _guarded(program, module, function):
    arguments = sys.argv[1:]
    if os.environ.get(GUARDED) == "1" or _subcommand(arguments) in IN_PLACE_COMMANDS:
        import importlib

        getattr(importlib.import_module(module), function)()
        return
    # The command dies with this process (a `kill -9` of the script ends its work) and names itself after argv[0]
    # in click's messages, as the console script would.
    run = f"import sys; sys.argv[0] = {program!r}; from tfyolo.processes import die_with_parent; "
    run += f"die_with_parent({os.getpid()}); from {module} import {function}; {function}()"
    child = subprocess.Popen([sys.executable, "-c", run, *arguments], env={**os.environ, GUARDED: "1"})
    # Ctrl-C reaches the child from the terminal; it reports its own interruption.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for signum in FORWARDED:
        signal.signal(signum, lambda number, frame: child.send_signal(number))
    sys.exit(exit_status(program, arguments, child.wait()))


def _subcommand(arguments):
    """The first argument that is not an option: `tfyolo`'s subcommand (its own options take no values)."""
    return next((argument for argument in arguments if not argument.startswith("-")), None)


def exit_status(program, arguments, code):
    """The parent's exit status for a child that ended with `code` (Popen's: negative for a signal), after printing
    one line for a crash or a kill from outside. A child ended by SIGINT, SIGTERM or SIGHUP ends this process by the
    same signal, as a shell expects of an interrupted command; it said what it had to say itself."""
    if code >= 0:
        return code
    signum = -code
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    command = " ".join([program, *arguments])
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
