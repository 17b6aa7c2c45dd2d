"""Errors that carry a user-facing message (the CLI prints them without a traceback)."""


class TfyoloError(Exception):
    """Base class: the message names the file or field, what was received and what was expected."""


class DataError(TfyoloError):
    """A dataset, label file, image or data.yaml is malformed or missing."""


class ConfigError(TfyoloError):
    """A configuration value or key is invalid."""


class ModelError(TfyoloError):
    """A model file is unreadable or is not a detector this tool understands."""


def one_line(error):
    """Any exception as one line: a TfyoloError is its message, a file-system error names the file, anything
    else says it was unexpected and how to see the traceback."""
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
