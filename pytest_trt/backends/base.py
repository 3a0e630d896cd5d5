"""Compatibility: the backend protocol moved to :mod:`pytest_trt.engines.protocol` (see the README's changelog)."""

from pytest_trt.engines.protocol import *  # noqa: F403
