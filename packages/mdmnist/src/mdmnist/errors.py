"""The one exception type for user mistakes, so callers and the CLI can report them in one line."""

from __future__ import annotations


class MdmnistError(ValueError):
    """Invalid argument, bad input file or unusable output: the message is one clear line."""
