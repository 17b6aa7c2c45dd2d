"""How a running job says what it is doing, without knowing who listens."""


class JobCancelled(Exception):
    """Raised from a progress callback when the job was cancelled; the job stops at its next step."""


class Progress:
    """Silent by default. The terminal draws a bar per stage and prints messages (`tfyolo.console.TqdmProgress`);
    the service writes the stage and its fraction into the job's record, and raises `JobCancelled` from `advance`
    when the job was cancelled."""

    def message(self, text):
        pass

    def stage(self, name, total):
        """A new stage of `total` steps begins (the previous one, if any, has ended)."""

    def advance(self, steps=1):
        pass

    def end_stage(self):
        pass
