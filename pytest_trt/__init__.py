"""pytest-trt: TensorRT / ONNX Runtime / PyTorch inference benchmarks as ordinary pytest tests.

Public API: :func:`register_model` (declare your own ONNX file or PyTorch module from a conftest or a
test module) and :class:`InputSpec`.  Imported lazily, so ``pytest-trt compare`` does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["InputSpec", "register_model"]

if TYPE_CHECKING:
    from pytest_trt.models.signature import InputSpec
    from pytest_trt.models.user_models import register_model


def __getattr__(name: str) -> Any:
    if name == "register_model":
        from pytest_trt.models.user_models import register_model

        return register_model
    if name == "InputSpec":
        from pytest_trt.models.signature import InputSpec

        return InputSpec
    raise AttributeError(f"module 'pytest_trt' has no attribute {name!r}")
