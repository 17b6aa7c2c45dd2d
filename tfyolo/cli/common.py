"""What every command shares: TfyoloError -> a one-line error and exit code 1, and progress bars."""

import functools
import os
import sys

import click
from tqdm import tqdm

from tfyolo.errors import TfyoloError


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


def one_line(error):
    if isinstance(error, TfyoloError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror}."
    text = " ".join(str(error).split())[:300]
    return (
        f"unexpected {type(error).__name__}: {text}. This input is not checked yet, or this is a bug in tfyolo; "
        "rerun with --debug (or TFYOLO_DEBUG=1) for the traceback."
    )


def markdown_table(rows, columns):
    """A Markdown table of dict `rows`; `columns` is a list of (key, header, format or None); None prints "-"."""
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [
            "-" if row.get(key) is None else (fmt.format(row[key]) if fmt else str(row[key])) for key, _, fmt in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def progress_bar(total, description):
    return tqdm(total=total, desc=description, unit="img", file=sys.stderr, dynamic_ncols=True, leave=False)


class TqdmTrainingReporter:
    """Draws one progress bar per epoch and prints a one-line summary after each."""

    def __init__(self):
        self.bar = None

    def message(self, text):
        click.echo(text, err=True)

    def epoch_start(self, epoch, epochs, num_batches):
        self.bar = tqdm(
            total=num_batches,
            desc=f"epoch {epoch + 1}/{epochs}",
            unit="batch",
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
        )

    def batch_end(self, losses):
        self.bar.update(1)
        self.bar.set_postfix({key: f"{value:.3f}" for key, value in losses.items()})

    def epoch_end(self, summary):
        self.bar.close()
        validation = (
            f"val mAP50 {summary['map50']:.3f} mAP50-95 {summary['map50_95']:.3f}"
            if summary["map50"] is not None
            else "(no validation this epoch)"
        )
        click.echo(
            f"epoch {summary['epoch']:>3}  loss {summary['loss']:.3f} (box {summary['box_loss']:.3f} "
            f"cls {summary['class_loss']:.3f} dfl {summary['dfl_loss']:.3f})  {validation}  "
            f"{summary['images_per_second']:.1f} img/s" + ("  *best" if summary["best"] else ""),
            err=True,
        )


def verify_and_report(bundle_dir):
    """Verifies a bundle folder, prints each problem, exits 1 if there is any."""
    from tfyolo.bundle import verify_bundle

    problems = verify_bundle(bundle_dir)
    for problem in problems:
        click.echo(f"FAIL {problem}", err=True)
    if problems:
        raise click.ClickException(f"{bundle_dir}: {len(problems)} problem(s); the bundle is not verified.")
    click.echo(f"{bundle_dir}: bundle verified (every sha256 matches, golden vectors reproduce).")
