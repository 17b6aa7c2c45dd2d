"""What every command shares: any error -> one line and exit code 1."""

import functools
import os

import click

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


def verify_and_report(bundle_dir):
    """Verifies a bundle folder, prints each problem, exits 1 if there is any."""
    from tfyolo.bundle import verify_bundle

    problems = verify_bundle(bundle_dir)
    for problem in problems:
        click.echo(f"FAIL {problem}", err=True)
    if problems:
        raise click.ClickException(f"{bundle_dir}: {len(problems)} problem(s); the bundle is not verified.")
    click.echo(f"{bundle_dir}: bundle verified (every sha256 matches, golden vectors reproduce).")
