"""Keeps the one line that matters visible: TensorFlow's native start-up chatter is dropped from stderr.

Importing TensorFlow prints absl lines (`WARNING: All log messages before absl::InitializeLog()`, oneDNN notices,
`cuInit: UNKNOWN ERROR (303)` on machines without a GPU) straight to file descriptor 2, where
TF_CPP_MIN_LOG_LEVEL does not reach them, in this process and in every conversion child. So descriptor 2 becomes a
pipe whose reader forwards everything but those lines. `--debug` (or TFYOLO_DEBUG=1) keeps them, and tracebacks.
"""

import atexit
import os
import re
import sys
import threading

# absl's format: severity letter, MMDD, time, thread id, file:line] (e.g. "I0000 00:00:1795.. 31094 port.cc:153]").
# The converter's C++ also prints its quantization settings ("fully_quantize: 0, inference_type: 6, ...").
NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]"
    rb"|fully_quantize: \d+, inference_type: )"
)
SEPARATOR = re.compile(rb"(\r|\n)")
# Lines LiteRT prints in the middle of another line (a progress bar redrawn without a newline): cut out wherever
# they appear.
INLINE_NOISE = re.compile(
    rb"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.\n?|INFO: Initialized TensorFlow Lite runtime\.\n?"
)


def debug_requested(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    return os.environ.get("TFYOLO_DEBUG") == "1" or "--debug" in argv


def _forward(read_end, original):
    pending = b""
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        pieces = SEPARATOR.split(INLINE_NOISE.sub(b"", pending + chunk))
        pending = pieces.pop()  # the unfinished segment after the last separator
        kept, dropping = [], False
        for piece in pieces:
            if piece in (b"\r", b"\n"):
                if not dropping:
                    kept.append(piece)
                dropping = False
            elif NOISE.match(piece):
                dropping = True
            else:
                kept.append(piece)
        # A progress bar redraws without a newline: pass an unfinished segment on unless it may be noise.
        if pending and not (pending[:1] in (b"W", b"I", b"E", b"F") and len(pending) < 200):
            kept.append(pending)
            pending = b""
        if kept:
            os.write(original, b"".join(kept))
    if pending and not NOISE.match(pending):
        os.write(original, pending)


def silence_native_logs():
    """Filters descriptor 2 for the rest of the process (and its children), unless debugging was asked for."""
    if debug_requested():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    reader = threading.Thread(target=_forward, args=(read_end, original), daemon=True)
    reader.start()

    def restore():
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last writer in this process: the reader drains and stops
        reader.join(timeout=2)

    atexit.register(restore)
