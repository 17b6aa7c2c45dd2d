"""What every command shares: any error -> one line and exit code 1."""

import functools
import json
import os
from pathlib import Path

import click

from tfyolo.config import MAX_INPUT_SIZE
from tfyolo.errors import one_line


def user_errors(function):
    """Ends every failure in one line: a TfyoloError is the message itself, a file-system error names the file,
    anything else says it was unexpected. `--debug` (TFYOLO_DEBUG=1) lets the exception and its traceback through.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (click.ClickException, click.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:
            if os.environ.get("TFYOLO_DEBUG") == "1":
                raise
            raise click.ClickException(one_line(error))

    return wrapper


def check_tflite_in_child(path, mcu=False):
    """A .tflite a user names is loaded and run once in a child process before this one opens it
    (`tfyolo.tflite_runtime.check_in_child`): a native crash of LiteRT (and, with `mcu`, of TFLite Micro) on a
    malformed file is one line, not the silent end of the command. Anything else is left to the command."""
    path = Path(path)
    if path.suffix != ".tflite" or not path.is_file():
        return
    from tfyolo.tflite_runtime import check_in_child

    extra = ()
    if mcu:
        from tfyolo.targets.mcu_target import MCU_STEPS

        extra = MCU_STEPS
    check_in_child(path, extra)


def _bundle_model(bundle_dir):
    """The .tflite a bundle's manifest names, when it is a file directly in the bundle folder (else None: the
    verification itself reports it)."""
    try:
        name = json.loads((Path(bundle_dir) / "manifest.json").read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return None
    path = Path(bundle_dir) / name if isinstance(name, str) else None
    return path if path and path.resolve().parent == Path(bundle_dir).resolve() else None


def verify_and_report(bundle_dir):
    """Verifies a bundle folder, prints each problem, exits 1 if there is any."""
    from tfyolo.bundle import verify_bundle

    model = _bundle_model(bundle_dir)
    if model is not None:
        check_tflite_in_child(model)
    problems = verify_bundle(bundle_dir)
    for problem in problems:
        click.echo(f"FAIL {problem}", err=True)
    if problems:
        raise click.ClickException(f"{bundle_dir}: {len(problems)} problem(s); the bundle is not verified.")
    click.echo(f"{bundle_dir}: bundle verified (every sha256 matches, golden vectors reproduce).")


class ModelInputSize(click.ParamType):
    """A model's square input side: a positive multiple of 32, the coarsest stride (a bad value exits 2)."""

    name = "pixels"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            size = value
        else:
            try:
                size = int(str(value), 10)
            except ValueError:
                self.fail(f"expected a positive multiple of 32, received {value!r}.", param, ctx)
        if size < 32 or size % 32 or size > MAX_INPUT_SIZE:
            self.fail(
                f"expected a multiple of 32 from 32 to {MAX_INPUT_SIZE} (the coarsest stride is 32), received {size}; "
                f"the nearest valid sizes are {max(32, size // 32 * 32)} and {(max(size, 0) // 32 + 1) * 32}.",
                param,
                ctx,
            )
        return size


# Command-line ranges: a value outside them is a usage error (exit 2) before any work starts.
MODEL_INPUT_SIZE = ModelInputSize()
AT_LEAST_ONE = click.IntRange(min=1)
NON_NEGATIVE = click.IntRange(min=0)
NON_NEGATIVE_FLOAT = click.FloatRange(min=0.0)
PROBABILITY = click.FloatRange(0.0, 1.0)
POSITIVE_FLOAT = click.FloatRange(min=0.0, min_open=True)
