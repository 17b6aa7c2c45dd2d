"""A step for `tfyolo.tflite_runtime.check_in_child` that dies the way LiteRT does on a malformed field (SIGSEGV),
every time: the child-process containment is tested on a crash that does not depend on the heap. Its own module, so
the spawned child imports nothing else of the tests."""

import os
import signal


def crash_while_loading(content, phase):
    phase("loading")
    os.kill(os.getpid(), signal.SIGSEGV)
