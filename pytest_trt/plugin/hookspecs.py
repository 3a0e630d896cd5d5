"""The plugin's extension points, as pytest hooks (implement them in a conftest.py or a plugin)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pytest_trt.engines.protocol import Backend

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_trt_register_backends(register: Callable[[str, str | type[Backend]], None]) -> None:
    """Add inference backends before the options are resolved, so ``--trt-backend`` accepts them.

    Call ``register(name, target)`` once per backend, where ``target`` is a
    :class:`pytest_trt.engines.protocol.Backend` subclass or ``"module:Class"`` (imported when first used)::

        def pytest_trt_register_backends(register):
            register("my_engine", MyBackend)
    """
