"""Compatibility: the backend registry moved to :mod:`pytest_trt.engines.registry` (see the README's changelog).

A conftest that still calls ``pytest_trt.backends.register(...)`` keeps working; new code implements the
``pytest_trt_register_backends`` hook instead.
"""

from pytest_trt.engines.registry import availability, get, names, register

__all__ = ["availability", "get", "names", "register"]
