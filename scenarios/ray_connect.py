"""The one way liqnet reaches Ray: join a cluster, or start a private local instance.

``liqnet sweep`` and ``liqnet train`` (and their Python functions) both go through
:func:`ray_connection`:

* an explicit ``address`` or ``RAY_ADDRESS`` joins that cluster (Ray refuses ``num_cpus``
  there: the cluster has its own resources);
* otherwise ``address="local"`` starts a fresh instance with ``num_cpus`` CPUs, even if
  ``ray start`` left a cluster running on this machine (``address=None`` would join it).
  Its processes carry the driver's marker, and what an earlier, killed driver's instance
  left running is stopped first (:mod:`liqnet.scenarios.ray_orphans`).

Token authentication, as Ray 2.60 implements it (``ray/_private/authentication/
authentication_token_setup.py`` and ``ray.init`` in ``ray/_private/worker.py``;
https://docs.ray.io/en/latest/ray-security/token-auth.html): the mode comes from
``RAY_AUTH_MODE`` (``disabled`` by default, ``token``), the token from ``RAY_AUTH_TOKEN``,
else the file ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``. Two of Ray's defaults
bite a user who follows the README:

* a local ``ray.init()`` turns token mode on and, when no token exists, *writes*
  ``~/.ray/auth_token``; every later ``ray start --head`` finds that file and enables token
  auth, while a driver given an explicit address stays in ``disabled`` mode and is refused
  (after ~20 s of retries). So a local instance here gets a fresh token of its own in
  ``RAY_AUTH_TOKEN`` for its lifetime (it reaches the instance's processes through their
  environment) and nothing is written to disk.
* ``ray start`` enables token mode when ``RAY_AUTH_MODE`` is unset and a token is
  available; ``ray.init(address=...)`` does not. Joining, liqnet applies ``ray start``'s
  rule, so a driver on the machine that started the head agrees with it. A token-mode
  driver also joins a cluster without auth. An explicit ``RAY_AUTH_MODE`` always wins.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import secrets
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import tomllib

from liqnet.core.errors import ScenarioError
from liqnet.scenarios.ray_orphans import MARKER, owner_marker, reap_orphans

__all__ = [
    "RayConnectionError",
    "RuntimeEnvError",
    "cluster_address",
    "load_runtime_env",
    "ray_connection",
    "resolve_runtime_env",
    "token_available",
]

AUTH_MODE, AUTH_TOKEN, AUTH_TOKEN_PATH = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"


class RayConnectionError(ScenarioError):
    """The Ray cluster named by ``--address`` or ``RAY_ADDRESS`` could not be joined (a
    ScenarioError, so the CLI reports it in one line and exits 2)."""


class RuntimeEnvError(ScenarioError):
    """A ``runtime_env`` file or table is invalid (one line naming the field)."""


# Keys holding local paths that Ray packs and uploads from the driver (URIs stay as given).
_PATH_KEYS = ("working_dir", "py_modules")


def _resolve_path(value: Any, folder: Path, label: str) -> Any:
    if not isinstance(value, str):
        raise RuntimeEnvError(f"{label} = {value!r}: must be a path or a URI (a string)")
    if "://" in value:
        return value
    path = Path(value).expanduser()
    path = path if path.is_absolute() else folder / path
    if not path.exists():
        raise RuntimeEnvError(f"{label} = {value!r}: {path} does not exist")
    return str(path.resolve())


def resolve_runtime_env(env: Any, folder: Path | None = None, origin: str = "runtime_env") -> dict:
    """Check a Ray ``runtime_env`` table and make its local paths absolute.

    Relative ``working_dir`` and ``py_modules`` paths are relative to ``folder`` (the
    file they are written in; default: the current directory), as a sweep's relative
    ``base`` is. Other keys (``pip``, ``env_vars``, ``excludes``, ...) are Ray's to check.
    Ray uploads the paths from the driver, so workers see them without a shared disk
    (https://docs.ray.io/en/latest/ray-core/handling-dependencies.html).

    Raises:
        RuntimeEnvError: Not a table, or a path that does not exist.
    """
    if not isinstance(env, dict):
        raise RuntimeEnvError(f"{origin}: must be a table, got {type(env).__name__}")
    folder = folder or Path.cwd()
    resolved = dict(env)
    if "working_dir" in resolved:
        label = f"{origin}.working_dir"
        resolved["working_dir"] = _resolve_path(resolved["working_dir"], folder, label)
    if "py_modules" in resolved:
        modules = resolved["py_modules"]
        if not isinstance(modules, list):
            raise RuntimeEnvError(f"{origin}.py_modules = {modules!r}: must be a list")
        resolved["py_modules"] = [
            _resolve_path(m, folder, f"{origin}.py_modules.{k}") for k, m in enumerate(modules)
        ]
    return resolved


def load_runtime_env(path: str | Path) -> dict:
    """A ``runtime_env`` from a JSON, TOML or YAML file (YAML as ``ray job submit
    --runtime-env`` takes), its relative paths relative to the file.

    Raises:
        RuntimeEnvError: The file is missing, not parseable, or names missing paths.
    """
    path = Path(path)
    origin = f"--runtime-env {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RuntimeEnvError(f"{origin}: cannot read it: {err.strerror or err}") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml  # a dependency of Ray

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as err:  # json, TOML and YAML errors share no base class
        raise RuntimeEnvError(f"{origin}: not valid {path.suffix or 'JSON'}: {err}") from None
    return resolve_runtime_env(data, path.parent, origin)


def cluster_address(address: str | None = None) -> str | None:
    """The cluster to join: ``address``, else ``RAY_ADDRESS``, else None (start locally);
    ``"local"`` (either way) also means a local instance, as for ``ray.init``."""
    target = address or os.environ.get("RAY_ADDRESS") or None
    return None if target == "local" else target


def token_available() -> bool:
    """Whether Ray would find a token: ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
    ``~/.ray/auth_token`` (the precedence of Ray's AuthenticationTokenLoader)."""
    if os.environ.get(AUTH_TOKEN):
        return True
    if os.environ.get(AUTH_TOKEN_PATH):
        return True  # Ray treats an unreadable path as fatal, so it is "available"
    return (Path.home() / ".ray" / "auth_token").is_file()


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block, restore the previous values after."""
    if not values:  # nothing to change: leave Ray's cached configuration alone
        yield
        return
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    auth = any(key in (AUTH_MODE, AUTH_TOKEN) for key in values)
    if auth:
        _refresh_auth()
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if auth:
            _refresh_auth()


def _refresh_auth() -> None:
    """Make Ray re-read the auth mode and token from the environment: both are cached in
    C++ (RayConfig and AuthenticationTokenLoader), as Ray's own ``_enable_token_auth`` does
    with ``Config.initialize``."""
    with suppress(ImportError, AttributeError):
        raylet: Any = importlib.import_module("ray._raylet")  # Ray ships no stubs for it
        raylet.Config.initialize("")
        raylet.AuthenticationTokenLoader.instance().reset_cache()


def _join_environment() -> dict[str, str]:
    if AUTH_MODE not in os.environ and token_available():
        return {AUTH_MODE: "token"}  # `ray start`'s rule (maybe_enable_token_auth_...)
    return {}


def _local_environment() -> dict[str, str]:
    mode = os.environ.get(AUTH_MODE, "token").lower()
    if mode == "token" and not os.environ.get(AUTH_TOKEN):
        # A token only this instance knows: nothing is written to ~/.ray/auth_token.
        return {AUTH_MODE: "token", AUTH_TOKEN: secrets.token_hex(32)}
    return {}


def _join_error(target: str, err: Exception) -> RayConnectionError:
    mode = os.environ.get(AUTH_MODE, "disabled")
    hint = (
        "if the cluster uses token auth, set RAY_AUTH_MODE=token and its token "
        "(~/.ray/auth_token, RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH) as on the head"
        if mode != "token"
        else "check that the token matches the head's and the address is right"
    )
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return RayConnectionError(
        f"could not join the Ray cluster at {target} (RAY_AUTH_MODE={mode}): {first}; {hint}"
    )


@contextmanager
def ray_connection(
    address: str | None = None,
    num_cpus: int | None = None,
    runtime_env: dict[str, Any] | None = None,
    **init_kwargs: Any,
) -> Iterator[bool]:
    """Connect to Ray for the block; yield whether a local instance was started.

    A connection the caller already made is used as it is (and left open). Otherwise
    ``address`` or ``RAY_ADDRESS`` is joined, or else a local instance with ``num_cpus``
    CPUs (default: all) is started; on exit the driver disconnects (a local instance
    stops, a cluster keeps running).

    Args:
        address: Cluster address (``host:port``, ``ray://host:10001``, ``auto``).
        num_cpus: CPUs of a local instance (ignored when joining a cluster).
        runtime_env: Ray ``runtime_env`` of the job (``working_dir``, ``pip``,
            ``py_modules``, ``env_vars``, ...): what workers need of the driver's files.
        init_kwargs: More ``ray.init`` arguments (``log_to_driver``, ...).

    Raises:
        RayConnectionError: The cluster could not be joined (one line: address, auth
            mode, Ray's error and what to set).
        ValueError: ``runtime_env`` given while Ray is already connected.
    """
    import ray

    if ray.is_initialized():
        if runtime_env:
            raise ValueError("runtime_env: Ray is already connected; pass it to ray.init")
        yield False
        return
    init_kwargs.setdefault("logging_level", logging.WARNING)
    if runtime_env:
        init_kwargs["runtime_env"] = runtime_env
    target = cluster_address(address)
    if target:
        env = _join_environment()
    else:
        env = _local_environment()
        # Every process of the instance inherits the marker, so that the next local start
        # can stop what it leaves running if this driver is killed (ray_orphans).
        marker = owner_marker()
        if marker is not None:
            env[MARKER] = marker
        reap_orphans()
        init_kwargs.update(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False)
    with _environ(env):
        # ray.init replaces the process's SIGTERM handler with its own sys.exit; a caller
        # that installed one (the sweep command's clean shutdown) keeps it.
        sigterm = signal.getsignal(signal.SIGTERM)
        try:
            # "local": a fresh instance, even if `ray start` left one running here.
            ray.init(address=target or "local", **init_kwargs)
        except (ConnectionError, ray.exceptions.AuthenticationError) as err:
            if not target:
                raise
            raise _join_error(target, err) from None
        if callable(sigterm) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)
        try:
            yield not target
        finally:
            ray.shutdown()
