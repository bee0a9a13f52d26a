"""Fixtures shared by the scenario tests: a local Ray for the modules that use it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray

from liqnet.scenarios.ray_connect import ray_connection


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local two-CPU Ray (no dashboard), shut down after the requesting module; started
    as liqnet starts one, so it writes no ``~/.ray/auth_token`` (a bare ``ray.init()``
    would, and turn on token auth for every later ``ray start`` on this machine)."""
    with ray_connection(address="local", num_cpus=2, log_to_driver=False):
        yield


@pytest.fixture
def no_ray_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``RAY_ADDRESS`` and no Ray connection: a sweep must start its own instance."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()
