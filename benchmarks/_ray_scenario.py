"""Ray for S6 of the goodput benchmark, the Ray tests and the scaling docs' test: a local
cluster that stays on loopback and offline.

``local_ray()`` starts one for a ``with`` block and leaves nothing of it behind;
``offline_ray_env(base)`` is the environment it gives Ray's processes, for tests that start
Ray in a script of their own.  The S6 runner itself is ``_goodput_fleet.run_in_ray_tasks``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import ray

# Ray does three things on its own that leave the machine, none of which a benchmark or test
# may do: it finds its node address by routing a UDP socket towards a public address (and
# then binds and connects on the machine's public interface), it reports usage statistics,
# and its always-loaded usage module probes cloud metadata addresses (169.254.169.254 and
# metadata.google.internal) unless ~/ray_bootstrap_config.yaml names a provider.
OFFLINE_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # Read on every platform despite its name: off, Ray uses 127.0.0.1 as the node address.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}
_BOOTSTRAP_CONFIG = "provider:\n  type: local\n"


def offline_ray_env(base: str | os.PathLike[str]) -> dict[str, str]:
    """Environment for Ray processes that talk to loopback only and write only under ``base``.

    ``base`` (an existing, short path: Ray's Unix sockets go under it) gets ``home``, which
    becomes ``HOME`` (with the bootstrap config that stops the cloud probes; Ray's auth token
    lands there too, not in the real home directory), and Ray's temporary files.
    """
    home = Path(base, "home")
    home.mkdir(exist_ok=True)
    (home / "ray_bootstrap_config.yaml").write_text(_BOOTSTRAP_CONFIG, encoding="utf-8")
    return {**OFFLINE_ENV, "HOME": str(home), "RAY_TMPDIR": str(base)}


@contextlib.contextmanager
def local_ray(num_cpus: int = 2) -> Iterator[None]:
    """A local, loopback-only Ray cluster for the ``with`` block; nothing of it is left after.

    The environment is changed for the block (Ray's processes read it when they start, the
    driver reads ``HOME`` for its token) and restored after; Ray's files are removed, and
    the driver forgets the cluster's token, so a process can start one cluster after another.
    """
    base = tempfile.mkdtemp(prefix="wsray-")
    env = offline_ray_env(base)
    # ray.init sets RAY_AUTH_MODE for its token authentication: restored with the rest.
    saved = {name: os.environ.get(name) for name in (*env, "RAY_ADDRESS", "RAY_AUTH_MODE")}
    # An inherited RAY_ADDRESS would make ray.init join that cluster instead.
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.update(env)
    # This process imported Ray before the variable was set, and Ray reads it at import: the
    # driver picks the node address, so tell its copy too (the processes it starts read the
    # environment).  test_scale_out.py checks the node really is on 127.0.0.1.
    constants = ray._private.ray_constants
    loopback = (
        mock.patch.object(constants, "ENABLE_RAY_CLUSTER", False)
        if hasattr(constants, "ENABLE_RAY_CLUSTER")
        else contextlib.nullcontext()
    )
    try:
        with loopback:
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
            try:
                yield
            finally:
                ray.shutdown()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _forget_auth_token()
        shutil.rmtree(base, ignore_errors=True)


def _forget_auth_token() -> None:
    """Drop the token this process cached for the cluster that has just stopped.

    A new cluster's processes read their token from the new ``HOME``, where ray.init writes
    one only if this process holds none: with the old one still cached, the next cluster's
    GCS finds no token and exits, and ray.init times out.
    """
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # a Ray without token authentication caches nothing
        return
    # The config first, so nothing reloads the token while it still says token mode.
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
