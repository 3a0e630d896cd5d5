"""The zoo: the model registry with the built-in catalogue loaded, and weight loading, under one name.

Most of the package asks ``zoo.get(name)`` and ``zoo.load_model(spec)``; what each does lives in
:mod:`.registry`, :mod:`.catalogue` and :mod:`.weights`.
"""

from __future__ import annotations

from pytest_trt.models import catalogue  # noqa: F401 - registers the built-in models
from pytest_trt.models.registry import TASKS, ModelSpec, get, names, register, unregister
from pytest_trt.models.signature import InputSpec
from pytest_trt.models.weights import (
    WEIGHT_CHOICES,
    WeightsUnavailable,
    calibrate_batchnorm,
    fetch_weights,
    has_published_weights,
    is_trained,
    load_dense,
    load_model,
    read_safetensors,
    weights_kind,
)

__all__ = [
    "TASKS",
    "WEIGHT_CHOICES",
    "InputSpec",
    "ModelSpec",
    "WeightsUnavailable",
    "calibrate_batchnorm",
    "fetch_weights",
    "get",
    "has_published_weights",
    "is_trained",
    "load_dense",
    "load_model",
    "names",
    "read_safetensors",
    "register",
    "unregister",
    "weights_kind",
]
