"""The one exception type for user mistakes; the CLI prints its message as one line, no traceback."""


class FsbenchError(Exception):
    """A user-facing error: bad argument, missing or corrupt dataset, unavailable device."""
