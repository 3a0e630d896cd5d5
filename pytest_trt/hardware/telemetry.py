"""Environment capture and live telemetry: NVML (never a CUDA context), host RSS, Jetson tegrastats.

``machine_info()`` describes GPUs, driver and library versions for pytest-benchmark's machine_info.
:class:`Sampler` runs a background thread (1 ms target period) over each benchmark on a GPU and reports
device memory used (mean/max), SM/memory clocks, throttle reasons, power, and energy from NVML's
total-energy counter.  On the host it runs no thread: a thread waking every millisecond took a core
from the engine's own threads on a 2-core machine (onnxruntime ResNet18 8-11 % slower, docs/measurements.md),
so the process RSS is read at the start and the end, and its peak from the kernel's high-water mark.
"""

from __future__ import annotations

import contextlib
import os
import platform
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

_NVML: Any = None
_NVML_ERR: str | None = None
_NVML_LOCK = threading.Lock()


def nvml() -> Any:
    """The initialised pynvml module, or None (reason in :func:`nvml_error`)."""
    global _NVML, _NVML_ERR
    with _NVML_LOCK:
        if _NVML is None and _NVML_ERR is None:
            try:
                import pynvml

                pynvml.nvmlInit()
                _NVML = pynvml
            except Exception as exc:  # no package, no driver, or no GPU
                _NVML_ERR = f"{type(exc).__name__}: {exc}"
        return _NVML


def release_nvml() -> None:
    """Shut NVML down (and forget it) so that processes forked afterwards start their own session."""
    global _NVML, _NVML_ERR
    with _NVML_LOCK:
        if _NVML is not None:
            with contextlib.suppress(Exception):
                _NVML.nvmlShutdown()
        _NVML = None
        _NVML_ERR = None


def nvml_error() -> str | None:
    nvml()
    return _NVML_ERR


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def visible_handles() -> list[tuple[int, Any]]:
    """(physical index, handle) of the GPUs this process may use, honouring CUDA_VISIBLE_DEVICES."""
    nv = nvml()
    if nv is None:
        return []
    count = nv.nvmlDeviceGetCount()
    handles = [(i, nv.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is None:
        return handles
    picked = []
    for tok in (t.strip() for t in cvd.split(",")):
        if not tok:
            continue
        if tok.isdigit():
            if int(tok) < count:
                picked.append(handles[int(tok)])
            else:
                break  # CUDA stops at the first invalid entry
        else:
            match = [(i, h) for i, h in handles if _s(nv.nvmlDeviceGetUUID(h)).startswith(tok)]
            if not match:
                break
            picked.append(match[0])
    return picked


def _try(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:
        return None


def throttle_names(mask: int | None) -> list[str]:
    """Names of the active clock-event (throttle) reasons in ``mask``, idle and 'none' left out."""
    nv = nvml()
    if nv is None or not mask:
        return []
    names = []
    for attr in dir(nv):
        for prefix in ("nvmlClocksEventReason", "nvmlClocksThrottleReason"):
            if attr.startswith(prefix):
                short = attr[len(prefix) :]
                if short in ("None", "All", "GpuIdle", "Unknown", "ApplicationsClocksSetting") or not short:
                    continue
                bit = getattr(nv, attr)
                if isinstance(bit, int) and bit and mask & bit and short not in names:
                    names.append(short)
    return sorted(names)


def gpu_info(index: int, handle: Any) -> dict[str, Any]:
    nv = nvml()
    assert nv is not None
    mem = _try(nv.nvmlDeviceGetMemoryInfo, handle)
    cc = _try(nv.nvmlDeviceGetCudaComputeCapability, handle)
    mig = _try(nv.nvmlDeviceGetMigMode, handle)
    limit = _try(nv.nvmlDeviceGetPowerManagementLimit, handle)
    draw = _try(nv.nvmlDeviceGetPowerUsage, handle)
    info = {
        "index": index,
        "name": _s(_try(nv.nvmlDeviceGetName, handle)),
        "uuid": _s(_try(nv.nvmlDeviceGetUUID, handle)),
        "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
        "memory_total_mb": round(mem.total / 2**20) if mem else None,
        "sm_clock_mhz": _try(nv.nvmlDeviceGetClockInfo, handle, nv.NVML_CLOCK_SM),
        "mem_clock_mhz": _try(nv.nvmlDeviceGetClockInfo, handle, nv.NVML_CLOCK_MEM),
        "max_sm_clock_mhz": _try(nv.nvmlDeviceGetMaxClockInfo, handle, nv.NVML_CLOCK_SM),
        "power_limit_w": limit / 1000 if limit else None,
        "power_draw_w": draw / 1000 if draw else None,
        "temperature_c": _try(nv.nvmlDeviceGetTemperature, handle, nv.NVML_TEMPERATURE_GPU),
        "persistence_mode": _try(nv.nvmlDeviceGetPersistenceMode, handle),
        "mig_mode": mig[0] if isinstance(mig, (list, tuple)) else mig,
        "throttle_reasons": throttle_names(
            _try(nv.nvmlDeviceGetCurrentClocksEventReasons, handle)
            or _try(nv.nvmlDeviceGetCurrentClocksThrottleReasons, handle)
        ),
    }
    return info


def machine_info(builders: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """Everything about the machine a result depends on (NVML only: no CUDA context is created).

    ``builders`` (``trt_version``, ``tensorrt_rtx_version``) come from the caller: the machine layer
    knows nothing of engines."""
    from pytest_trt.hardware import jetson

    out: dict[str, Any] = {"pytest_trt": _pkg_version("pytest-trt")}
    for mod in ("torch", "onnxruntime", "onnx", "torchvision", "openvino"):
        out[mod] = _pkg_version(mod)
    with contextlib.suppress(Exception):
        import torch

        out["torch_cuda_runtime"] = torch.version.cuda
        out["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    out["trt_version"] = None
    out.update(builders or {})
    nv = nvml()
    if nv is not None:
        out["driver"] = _s(_try(nv.nvmlSystemGetDriverVersion))
        cuda = _try(nv.nvmlSystemGetCudaDriverVersion)
        out["cuda_driver"] = f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else None
        out["gpus"] = [gpu_info(i, h) for i, h in visible_handles()]
        out["gpu"] = out["gpus"][0]["name"] if out["gpus"] else None
    else:
        out["gpus"] = []
        out["gpu"] = None
        out["nvml"] = nvml_error()
    out["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    out["host"] = platform.node()
    j = jetson.board()
    if j is not None:
        out["jetson"] = j
    return out


def _pkg_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def cpu_steal_s() -> float | None:
    """Seconds of CPU time the hypervisor has taken from this machine's CPUs since boot (``/proc/stat``)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS count (VmHWM) at the current RSS; False where Linux does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int | None:
    """The process's peak RSS since it started or since :func:`reset_peak_rss` (Linux ``VmHWM``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@dataclass
class Sampler:
    """Background sampling over one benchmark; ``summary()`` after ``stop()``."""

    device_index: int | None  # torch-visible CUDA index, or None for CPU
    period_s: float = 0.001
    mem_mb: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    sm_mhz: list[int] = field(default_factory=list)
    mem_mhz: list[int] = field(default_factory=list)
    power_w: list[float] = field(default_factory=list)
    throttle_mask: int = 0
    energy_mj: tuple[int | None, int | None] = (None, None)
    t: tuple[float, float] = (0.0, 0.0)
    peak_since_start: bool = False  # the host peak is this benchmark's, not the process's lifetime one
    rss_peak_mb: float | None = None
    steal_s: tuple[float | None, float | None] = (None, None)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _handle: Any = None

    def start(self) -> Sampler:
        nv = nvml()
        if self.device_index is not None and nv is not None:
            handles = visible_handles()
            if self.device_index < len(handles):
                self._handle = handles[self.device_index][1]
        if self._handle is not None:
            self.energy_mj = (_try(nv.nvmlDeviceGetTotalEnergyConsumption, self._handle), None)
        self.t = (time.perf_counter(), 0.0)
        self.steal_s = (cpu_steal_s(), None)
        if self.device_index is None:
            self.peak_since_start = reset_peak_rss()
            self._host_rss()
            return self
        self._thread = threading.Thread(target=self._run, name="pytest-trt-sampler", daemon=True)
        self._thread.start()
        return self

    def _host_rss(self) -> None:
        rss = rss_bytes()
        if rss is not None:
            self.rss_mb.append(rss / 2**20)

    def _run(self) -> None:
        nv = nvml()
        h = self._handle
        slow_every = 10  # clocks and power change slowly and cost more to read: every 10th sample
        k = 0
        while not self._stop.is_set():
            if h is not None:
                mem = _try(nv.nvmlDeviceGetMemoryInfo, h)
                if mem is not None:
                    self.mem_mb.append(mem.used / 2**20)
                if k % slow_every == 0:
                    sm = _try(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM)
                    if sm is not None:
                        self.sm_mhz.append(sm)
                    mc = _try(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_MEM)
                    if mc is not None:
                        self.mem_mhz.append(mc)
                    p = _try(nv.nvmlDeviceGetPowerUsage, h)
                    if p is not None:
                        self.power_w.append(p / 1000)
                    r = _try(nv.nvmlDeviceGetCurrentClocksEventReasons, h)
                    if r is None:
                        r = _try(nv.nvmlDeviceGetCurrentClocksThrottleReasons, h)
                    self.throttle_mask |= int(r or 0)
            self._host_rss()
            k += 1
            self._stop.wait(self.period_s)

    def stop(self) -> Sampler:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        elif self.device_index is None:
            self._host_rss()
            peak = peak_rss_bytes()
            if peak is not None and self.peak_since_start:
                self.rss_peak_mb = peak / 2**20  # the high-water mark between the two readings
        self.t = (self.t[0], time.perf_counter())
        self.steal_s = (self.steal_s[0], cpu_steal_s())
        if self._handle is not None:
            nv = nvml()
            self.energy_mj = (self.energy_mj[0], _try(nv.nvmlDeviceGetTotalEnergyConsumption, self._handle))
        return self

    @property
    def clocks_changed(self) -> bool | None:
        if len(self.sm_mhz) < 2:
            return None
        lo, hi = min(self.sm_mhz), max(self.sm_mhz)
        return hi > 0 and (hi - lo) / hi > 0.05

    def steal_pct(self) -> float | None:
        """Share of the machine's CPU time the hypervisor took while sampling, in percent."""
        a, b = self.steal_s
        dur = self.t[1] - self.t[0]
        if a is None or b is None or dur <= 0:
            return None
        return round(100 * (b - a) / (dur * (os.cpu_count() or 1)), 2)

    def energy_j(self) -> float | None:
        a, b = self.energy_mj
        if a is None or b is None or b < a:
            return None
        return (b - a) / 1000.0

    def summary(self, inferences: int | None = None) -> dict[str, Any]:
        dur = max(self.t[1] - self.t[0], 1e-9)
        n = max(len(self.rss_mb), len(self.mem_mb))

        def mm(xs: list[float] | list[int]) -> dict[str, float] | None:
            return {"mean": sum(xs) / len(xs), "max": max(xs), "min": min(xs)} if xs else None

        threaded = self._thread is not None
        rss = mm(self.rss_mb)
        if rss is not None and self.rss_peak_mb is not None:
            rss["max"] = max(rss["max"], self.rss_peak_mb)
        out: dict[str, Any] = {
            "samples": n,
            "period_ms": round(dur / n * 1e3, 3) if n and threaded else None,
            "device_memory_used_mb": mm(self.mem_mb),
            "host_rss_mb": rss,
            "sm_clock_mhz": mm(self.sm_mhz),
            "mem_clock_mhz": mm(self.mem_mhz),
            "power_w": mm(self.power_w),
            "clocks_changed": self.clocks_changed,
            "throttle_reasons": throttle_names(self.throttle_mask),
            "cpu_steal_pct": self.steal_pct(),
        }
        e = self.energy_j()
        if e is not None:
            out["energy_j"] = e
            if inferences:
                out["energy_per_inference_j"] = e / inferences
                out["inferences_per_j"] = inferences / e if e > 0 else None
        elif self.power_w and inferences:
            e_est = sum(self.power_w) / len(self.power_w) * dur  # mean power x time when no counter
            out["energy_j_from_power"] = e_est
            out["energy_per_inference_j"] = e_est / inferences
        return out


@contextlib.contextmanager
def sampling(device_index: int | None, period_s: float = 0.001) -> Iterator[Sampler]:
    s = Sampler(device_index, period_s).start()
    try:
        yield s
    finally:
        s.stop()
