"""Locking GPU clocks through NVML for a session (``--trt-lock-clocks``), always restored.

Locking needs root (or the driver's permission setting); a refusal is reported in the header and the
JSON, never a failure of the run.  The previous state cannot be read back from NVML, so restoring
means resetting the locked clocks, which is the driver's default state.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass
from typing import Any

from pytest_trt.hardware import telemetry
from pytest_trt.hardware.device import Device


@dataclass
class ClockLock:
    requested: str
    locked: bool
    message: str
    _handle: Any = None
    _restored: bool = False

    def restore(self) -> None:
        if not self.locked or self._restored:
            return
        self._restored = True
        nv = telemetry.nvml()
        try:
            nv.nvmlDeviceResetGpuLockedClocks(self._handle)
            self.message += "; restored"
        except Exception as exc:
            self.message += f"; restoring failed ({exc}): run `nvidia-smi -rgc` as root"


def target_mhz(requested: str, handle: Any, nv: Any) -> int:
    if requested == "max":
        return int(nv.nvmlDeviceGetMaxClockInfo(handle, nv.NVML_CLOCK_SM))
    if requested == "base":
        # Base clock is not exposed by every driver; the default application clock is the closest.
        return int(nv.nvmlDeviceGetDefaultApplicationsClock(handle, nv.NVML_CLOCK_SM))
    return int(requested)


def lock(requested: str, device: Device) -> ClockLock:
    if not device.is_cuda:
        return ClockLock(
            requested, False, f"--trt-lock-clocks {requested}: no GPU (device {device.torch}); ignored"
        )
    nv = telemetry.nvml()
    handles = telemetry.visible_handles()
    if nv is None or device.index >= len(handles):
        return ClockLock(
            requested, False, f"--trt-lock-clocks {requested}: NVML unavailable ({telemetry.nvml_error()})"
        )
    handle = handles[device.index][1]
    try:
        mhz = target_mhz(requested, handle, nv)
        nv.nvmlDeviceSetGpuLockedClocks(handle, mhz, mhz)
    except Exception as exc:  # NVMLError_NoPermission, NotSupported, ...
        return ClockLock(
            requested, False, f"--trt-lock-clocks {requested} refused: {exc}; clocks left as they are"
        )
    cl = ClockLock(requested, True, f"SM clock locked at {mhz} MHz", handle)
    atexit.register(cl.restore)  # also on an interrupted session
    return cl
