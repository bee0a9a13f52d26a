"""Argument types of the ``liqnet`` command line: every value is checked before anything runs.

Each type raises :class:`argparse.ArgumentTypeError`, so argparse prints one line naming
the flag and the allowed values (``liqnet run: error: argument --seed: -1: a seed is an
integer in [0, 2**63)``) and exits with status 2, as for a bad scenario field. Checking
here, not in the handlers, means a bad value never starts Ray or writes a file.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

MAX_SEED = 2**63
"""Seeds are non-negative and below 2**63 (NumPy's SeedSequence takes any non-negative
integer, but run folders and tables store seeds as int64)."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help with every flag's default; defaults of ``None`` or ``False`` are not shown."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        # Identity, not ==: a default of 0 or 0.0 is worth showing, though 0 == False.
        hidden = default is None or default is False or default is argparse.SUPPRESS
        if hidden or default == [] or "%(default)" in text:
            return text
        return super()._get_help_string(action)


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer") from None


def seed(text: str) -> int:
    """A world seed: an integer in ``[0, 2**63)``."""
    value = _integer(text)
    if not 0 <= value < MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text}: a seed is an integer in [0, 2**63)")
    return value


def at_least(minimum: int, what: str) -> Callable[[str], int]:
    """An integer type accepting ``minimum`` or more; ``what`` names the quantity."""

    def parse(text: str) -> int:
        value = _integer(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text}: {what} must be at least {minimum}")
        return value

    parse.__name__ = f"at_least_{minimum}"
    return parse


def fraction(text: str) -> float:
    """A number in ``[0, 1]``."""
    value = _finite(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text}: must be in [0, 1]")
    return value


def non_negative(text: str) -> float:
    """A finite number ``>= 0``."""
    value = _finite(text)
    if value < 0.0:
        raise argparse.ArgumentTypeError(f"{text}: must be >= 0")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text}: expected a finite number")
    return value


def out_dir(text: str) -> Path:
    """An output directory: new, or an existing directory (never an existing file)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a directory")
    for parent in path.parents:  # a file where a parent folder must go fails the same way
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{text}: {parent} is not a directory")
            break
    return path


def existing_path(text: str) -> Path:
    """A file or directory that exists."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file or directory")
    return path
