"""Error types shared by every layer.

Each is a ``ValueError`` or ``RuntimeError`` as well, so callers that catch the builtin
keep working; the command line turns :class:`InputError` into one line and exit 2.
"""

from __future__ import annotations


class LiqnetError(Exception):
    """Base of liqnet's own errors."""


class InputError(LiqnetError, ValueError):
    """Bad user input (a file, a flag, a checkpoint): the message names the field."""


class ScenarioError(InputError):
    """A scenario file or override is invalid; the message names every bad field."""


class CheckpointError(InputError):
    """A checkpoint directory is missing, malformed or incompatible."""


class ConservationError(LiqnetError, RuntimeError):
    """A step created or destroyed money or asset units (names who and how much)."""


class UnknownNameError(InputError, KeyError):
    """A name is not in a registry (a protocol type, policy, mechanism); lists the allowed.

    A ``KeyError`` for lookups and a ``ValueError`` for validation, so either catch works.
    """

    def __str__(self) -> str:
        # KeyError would show the message with quotes around it.
        return str(self.args[0]) if self.args else ""
