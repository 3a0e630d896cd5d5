"""Backend registry: name -> backend class, imported lazily so a missing library never breaks the plugin."""

from __future__ import annotations

import importlib

from pytest_trt.engines.protocol import Availability, Backend

_REGISTRY: dict[str, str] = {
    "tensorrt": "pytest_trt.engines.tensorrt.backend:TensorRTBackend",
    "tensorrt_rtx": "pytest_trt.engines.tensorrt.backend:TensorRTRTXBackend",
    "onnxruntime": "pytest_trt.engines.onnxrt.backend:OnnxRuntimeBackend",
    "openvino": "pytest_trt.engines.openvino.backend:OpenVinoBackend",
    "torch": "pytest_trt.engines.pytorch.backend:TorchBackend",
    "torch_eager": "pytest_trt.engines.pytorch.backend:TorchEagerBackend",
    "torch_compile": "pytest_trt.engines.pytorch.backend:TorchCompileBackend",
}
_INSTANCES: dict[str, Backend] = {}
_CLASSES: dict[str, type[Backend]] = {}  # registered as classes (a conftest's module may not be importable)
_AVAILABILITY: dict[str, Availability] = {}

NAMES = tuple(_REGISTRY)  # the built-in backends


def names() -> tuple[str, ...]:
    """Built-in and registered backends (a conftest may register its own with :func:`register`)."""
    return tuple(_REGISTRY)


def register(name: str, target: str | type[Backend]) -> None:
    """Register a third-party backend: a :class:`Backend` subclass, or ``"module:Class"`` (imported lazily)."""
    if not isinstance(target, str):
        _CLASSES[name] = target
        target = f"{target.__module__}:{target.__qualname__}"
    _REGISTRY[name] = target
    _INSTANCES.pop(name, None)
    _AVAILABILITY.pop(name, None)


def get(name: str) -> Backend:
    if name not in _REGISTRY:
        raise KeyError(f"unknown backend {name!r}; choose from {', '.join(_REGISTRY)}")
    if name not in _INSTANCES:
        if name in _CLASSES:
            _INSTANCES[name] = _CLASSES[name]()
        else:
            module, cls = _REGISTRY[name].split(":")
            _INSTANCES[name] = getattr(importlib.import_module(module), cls)()
    return _INSTANCES[name]


def availability(name: str) -> Availability:
    """Asked once per process: collection checks it for every case, and a failed import is not retried."""
    if name not in _AVAILABILITY:
        try:
            _AVAILABILITY[name] = get(name).availability()
        except Exception as exc:  # a backend module that fails to import is unavailable, not a crash
            _AVAILABILITY[name] = Availability(False, reason=f"{type(exc).__name__}: {exc}")
    return _AVAILABILITY[name]
