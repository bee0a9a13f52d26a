"""liqnet.core.errors: every input error is a ValueError; unknown names are KeyErrors."""

from __future__ import annotations

from liqnet.core import CheckpointError, InputError, ScenarioError, UnknownNameError


def test_input_errors_are_value_errors() -> None:
    for cls in (ScenarioError, CheckpointError, UnknownNameError):
        assert issubclass(cls, InputError)
        assert issubclass(cls, ValueError)
    assert issubclass(UnknownNameError, KeyError)
    assert str(UnknownNameError("unknown thing 'x'")) == "unknown thing 'x'"
