"""User-facing errors.

A mistake by the person running imgclf (a missing path, an unknown model, a dataset that cannot be
trained on) raises a :class:`UserError`. The CLI prints its message as one sentence and exits with
code 2; the Python API lets it propagate so callers can catch it.
"""


class UserError(Exception):
    """A problem the user can fix; its message says what is wrong and, where possible, what to do."""


class DataError(UserError):
    """The data cannot be used as given (no images, one class, an empty class, an unsafe path)."""
