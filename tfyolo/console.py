"""Progress on a terminal: tqdm bars on stderr. Shared by the CLI and the benchmarks; the service reports progress
through its job records instead."""

import sys

from tqdm import tqdm

from tfyolo.jobs.progress import Progress


def progress_bar(total, description, unit="img"):
    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)


def echo(text):
    print(text, file=sys.stderr, flush=True)


class TqdmProgress(Progress):
    """A job's stages as tqdm bars, its messages as lines on stderr."""

    def __init__(self):
        self.bar = None

    def message(self, text):
        echo(text)

    def stage(self, name, total, unit="img"):
        self.end_stage()
        self.bar = progress_bar(total, name, unit)

    def advance(self, steps=1):
        if self.bar is not None:
            self.bar.update(steps)

    def end_stage(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class TqdmTrainingReporter:
    """Draws one progress bar per epoch and prints a one-line summary after each."""

    def __init__(self):
        self.bar = None

    def message(self, text):
        echo(text)

    def epoch_start(self, epoch, epochs, num_batches):
        self.bar = progress_bar(num_batches, f"epoch {epoch + 1}/{epochs}", unit="batch")

    def batch_end(self, losses):
        self.bar.update(1)
        self.bar.set_postfix({key: f"{value:.3f}" for key, value in losses.items()})

    def epoch_end(self, summary):
        from tfyolo.training.trainer import task_figures_text  # loaded already: it is the trainer calling

        self.bar.close()
        validation = (
            f"val mAP50 {summary['map50']:.3f} mAP50-95 {summary['map50_95']:.3f}"
            + task_figures_text(summary)  # a task's own: a segmenter's masks
            if summary["map50"] is not None
            else "(no validation this epoch)"
        )
        echo(
            f"epoch {summary['epoch']:>3}  loss {summary['loss']:.3f} (box {summary['box_loss']:.3f} "
            f"cls {summary['class_loss']:.3f} dfl {summary['dfl_loss']:.3f})  {validation}  "
            f"{summary['images_per_second']:.1f} img/s" + ("  *best" if summary["best"] else "")
        )
