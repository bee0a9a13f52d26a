"""Test helpers imported as a normal package (``from tests.helpers import ...``)."""
