"""How a running job says what it is doing, without knowing who listens."""


class JobCancelled(Exception):
    """Raised from a progress callback when the job was cancelled; the job stops at its next step."""


class Progress:
    """Silent by default. The terminal draws a bar per stage and prints messages (`tfyolo.console.TqdmProgress`);
    the service writes the stage and its fraction into the job's record, and raises `JobCancelled` from `advance`
    when the job was cancelled."""

    def message(self, text):
        pass

    def stage(self, name, total, unit="img"):
        """A new stage of `total` steps (`unit`s: images, batches) begins (the previous one, if any, has ended)."""

    def advance(self, steps=1):
        pass

    def end_stage(self):
        pass


class TrainingProgress:
    """The trainer's reporter (`tfyolo.training.trainer.SilentReporter`'s events) speaking through a `Progress`: a
    stage per epoch, a step per batch, the epoch's summary as a message."""

    def __init__(self, progress, name="training"):
        self.progress = progress
        self.name = name

    def message(self, text):
        self.progress.message(text)

    def epoch_start(self, epoch, epochs, num_batches):
        self.progress.stage(f"{self.name} epoch {epoch + 1}/{epochs}", num_batches, unit="batch")

    def batch_end(self, losses):
        self.progress.advance()

    def epoch_end(self, summary):
        self.progress.end_stage()
        self.progress.message(
            f"  {self.name} epoch {summary['epoch']}: loss {summary['loss']:.3f} (box {summary['box_loss']:.3f} "
            f"cls {summary['class_loss']:.3f} dfl {summary['dfl_loss']:.3f}), {summary['images_per_second']:.1f} img/s"
        )
