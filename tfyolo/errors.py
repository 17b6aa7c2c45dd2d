"""Errors that carry a user-facing message (the CLI prints them without a traceback)."""


class TfyoloError(Exception):
    """Base class: the message names the file or field, what was received and what was expected."""


class DataError(TfyoloError):
    """A dataset, label file, image or data.yaml is malformed or missing."""


class ConfigError(TfyoloError):
    """A configuration value or key is invalid."""


class ModelError(TfyoloError):
    """A model file is unreadable or is not a detector this tool understands."""
