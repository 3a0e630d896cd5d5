"""Which device a session runs on: :class:`Device`, GPU detection without a CUDA context, ``--trt-device``."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Device:
    kind: str  # "cpu" or "cuda"
    index: int = 0
    name: str = "cpu"

    @property
    def torch(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"


class DeviceError(ValueError):
    """A device name that cannot be used here; the message says what would."""


def gpu_present() -> bool:
    """Is there a CUDA GPU? NVML first (no CUDA context), torch as a fallback."""
    from pytest_trt.hardware import telemetry

    if telemetry.nvml() is not None:
        return len(telemetry.visible_handles()) > 0
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def resolve_device(value: str | None) -> Device:
    """``auto`` (a GPU if one is visible), ``cpu``, ``cuda`` or ``cuda:N``; raises :class:`DeviceError`."""
    v = value or "auto"
    if v == "cpu" or (v == "auto" and not gpu_present()):
        return Device("cpu", 0, "cpu")
    if v in ("auto", "cuda"):
        v = "cuda:0"
    if not v.startswith("cuda:") or not v[5:].isdigit():
        raise DeviceError("valid values: auto, cpu, cuda, cuda:N")
    from pytest_trt.hardware import telemetry

    idx = int(v[5:])
    handles = telemetry.visible_handles()
    name = "cuda"
    if idx < len(handles):
        name = telemetry.gpu_info(*handles[idx])["name"]
    elif not gpu_present():
        raise DeviceError("no CUDA GPU is visible; use --trt-device cpu")
    return Device("cuda", idx, name)


def release_cuda_cache() -> dict[str, float] | None:
    """Give the CUDA memory this process caches but no longer uses back to the driver, and say what it
    still holds (MiB); None where this process has no CUDA context.

    Why: the quality pass's large temporaries (float64 copies of 16 x 21 x 960 x 960 logits) stay in
    torch's caching allocator; a timing worker forked afterwards then finds the GPU full (an H200 ran
    out of memory with the session holding 135 GiB), so a case's timing would depend on the cases
    judged before it."""
    torch = sys.modules.get("torch")  # never import torch (or start CUDA) just to release nothing
    if torch is None or not torch.cuda.is_initialized():
        return None
    torch.cuda.empty_cache()
    return {
        "allocated_mb": round(torch.cuda.memory_allocated() / 2**20, 1),
        "reserved_mb": round(torch.cuda.memory_reserved() / 2**20, 1),
    }
