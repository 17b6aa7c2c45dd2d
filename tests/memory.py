"""Peak memory of a block of code, measured so that an earlier, larger peak cannot hide it.

`ru_maxrss` is the process's peak since it started, and a child started by fork/vfork + exec inherits its parent's
peak: after memory-heavy tests, a block that allocates 4 GiB may not raise it at all, and a bound on its growth
would pass without measuring anything. The kernel's per-process peak (VmHWM) can be reset to the current resident
size (Linux 4.0+), and is not inherited across exec."""

import contextlib
import re
from pathlib import Path

# For a child process: prints its own peak resident memory in KiB, as the last line of its output.
PRINT_PEAK_KIB = (
    "import re\nprint(re.search(r'^VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read(), re.M).group(1))\n"
)


def status_kib(field):
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


@contextlib.contextmanager
def peak_growth_kib():
    """Yields a one-item list holding, after the block, how far this process's peak resident memory rose above its
    resident memory at the start (KiB)."""
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    start = status_kib("VmRSS")
    growth = [0]
    try:
        yield growth
    finally:
        growth[0] = status_kib("VmHWM") - start
