"""The one exception type that means "the caller gave us bad input"."""


class InputError(Exception):
    """Bad hyperparameter, path or data: reported as one ``error: ...`` line, exit code 2."""
