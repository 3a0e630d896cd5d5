"""NVIDIA Jetson boards: detection, power modes (nvpmodel), and tegrastats sampling.

NVML is largely unavailable on Jetson and memory is shared with the CPU, so inference memory is the
RAM figure of ``tegrastats`` (what the reference study reports), and power comes from its rails.
Paths and commands are parameters so the parsers are tested on recorded output without a board.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RELEASE_FILE = Path("/etc/nv_tegra_release")
MODEL_FILE = Path("/proc/device-tree/model")

# L4T major.minor -> JetPack release line (NVIDIA's published pairing).
L4T_TO_JETPACK = {
    "32.4": "4.4",
    "32.5": "4.5",
    "32.6": "4.6",
    "32.7": "4.6.x",
    "34.1": "5.0",
    "35.1": "5.0.2",
    "35.2": "5.1",
    "35.3": "5.1.1",
    "35.4": "5.1.2",
    "35.5": "5.1.3",
    "35.6": "5.1.4",
    "36.2": "6.0 DP",
    "36.3": "6.0",
    "36.4": "6.1/6.2",
}
# Rails that measure the whole board's input power, by generation.
INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "VIN_SYS_5V0", "VIN")


def parse_release(text: str) -> dict[str, str] | None:
    """``# R35 (release), REVISION: 4.1, GCID: ..., BOARD: t186ref, ...`` -> l4t 35.4.1."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not m:
        return None
    l4t = f"{m.group(1)}.{m.group(2)}"
    major_minor = ".".join(l4t.split(".")[:2])
    out = {"l4t": l4t, "jetpack": L4T_TO_JETPACK.get(major_minor, "unknown")}
    b = re.search(r"BOARD:\s*([\w-]+)", text)
    if b:
        out["board_config"] = b.group(1)
    return out


def parse_nvpmodel(text: str) -> dict[str, Any] | None:
    """``nvpmodel -q`` prints ``NV Power Mode: MAXN`` and the mode id on the next line."""
    m = re.search(r"NV Power Mode:\s*(\S+)\s*\n\s*(\d+)", text)
    if not m:
        return None
    name = m.group(1)
    budget = re.search(r"(\d+)W", name)
    return {"mode": int(m.group(2)), "name": name, "budget_w": int(budget.group(1)) if budget else None}


def run_cmd(cmd: list[str], timeout: float = 10.0) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def detect(
    release_file: Path = RELEASE_FILE, model_file: Path = MODEL_FILE, query_tools: bool = True
) -> dict[str, Any] | None:
    """Board model, L4T/JetPack, power mode and jetson_clocks state; None when not a Jetson."""
    if not release_file.exists() and not model_file.exists():
        return None
    model = ""
    if model_file.exists():
        model = model_file.read_bytes().rstrip(b"\x00").decode(errors="replace").strip()
    rel = parse_release(release_file.read_text(errors="replace")) if release_file.exists() else None
    if "jetson" not in model.lower() and rel is None:
        return None
    out: dict[str, Any] = {"board": model or "unknown Jetson", **(rel or {})}
    if query_tools:
        pm = run_cmd(["nvpmodel", "-q"])
        out["power_mode"] = parse_nvpmodel(pm) if pm else None
        out["jetson_clocks"] = jetson_clocks_state(run_cmd(["jetson_clocks", "--show"]))
    return out


def jetson_clocks_state(show: str | None) -> str | None:
    """'locked' when jetson_clocks pinned CPU/GPU clocks (MinFreq == MaxFreq == CurrentFreq)."""
    if not show:
        return None
    gpu = re.search(r"GPU MinFreq=(\d+) MaxFreq=(\d+) CurrentFreq=(\d+)", show)
    if not gpu:
        return "unknown"
    lo, hi, cur = (int(g) for g in gpu.groups())
    return "locked" if lo == hi == cur else "dynamic"


_BOARD: dict[str, dict[str, Any] | None] = {}


def board() -> dict[str, Any] | None:
    """:func:`detect` on this machine, once per process (it runs nvpmodel and jetson_clocks)."""
    if "info" not in _BOARD:
        _BOARD["info"] = detect()
    return _BOARD["info"]


def power_mode_key() -> str | None:
    """The power mode as part of engine cache keys on Jetson; None elsewhere."""
    pm = (board() or {}).get("power_mode")
    return f"{pm['mode']}:{pm['name']}" if pm else None


def set_power_mode(mode: int, settle_s: float = 5.0) -> tuple[bool, str]:
    """Switch with ``sudo -n nvpmodel -m MODE`` (no password prompt); (ok, message)."""
    if shutil.which("nvpmodel") is None:
        return False, "nvpmodel not found (not a Jetson?)"
    try:
        p = subprocess.run(
            ["sudo", "-n", "nvpmodel", "-m", str(mode)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"nvpmodel -m {mode} failed: {exc}"
    if p.returncode != 0:
        return False, f"nvpmodel -m {mode} refused (exit {p.returncode}): {p.stderr.strip()[:300]}"
    time.sleep(settle_s)  # let clocks settle before the next sub-run measures
    _BOARD.clear()  # the power mode just changed
    return True, f"power mode set to {mode}"


_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?([\d,]+)\]?)?")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%")
_RAIL = re.compile(r"\b((?:VDD|POM|VIN)_[A-Z0-9_]+|VIN) (\d+)(?:mW)?/(\d+)(?:mW)?")
_TEMP = re.compile(r"\b([A-Za-z0-9_]+)@(-?\d+(?:\.\d+)?)C\b")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")


def parse_tegrastats(line: str) -> dict[str, Any]:
    """One tegrastats line (Nano/TX2 JetPack 4, Xavier JetPack 5, Orin JetPack 5/6) -> numbers."""
    out: dict[str, Any] = {}
    if m := _RAM.search(line):
        out["ram_used_mb"], out["ram_total_mb"] = int(m.group(1)), int(m.group(2))
    if m := _SWAP.search(line):
        out["swap_used_mb"] = int(m.group(1))
    if m := _GR3D.search(line):
        out["gpu_load_pct"] = int(m.group(1))
        if m.group(2):
            out["gpu_freq_mhz"] = int(m.group(2).split(",")[0])
    if m := _EMC.search(line):
        out["emc_load_pct"] = int(m.group(1))
    if m := _CPU.search(line):
        loads = [int(c.split("%")[0]) for c in m.group(1).split(",") if "%" in c]
        out["cpu_load_pct"] = sum(loads) / len(loads) if loads else 0.0
    rails = {name: int(cur) for name, cur, _avg in _RAIL.findall(line)}
    if rails:
        out["rails_mw"] = rails
        for r in INPUT_RAILS:
            if r in rails:
                out["input_power_mw"] = rails[r]
                break
    temps = {k: float(v) for k, v in _TEMP.findall(line) if not k.isdigit()}
    if temps:
        out["temps_c"] = temps
    return out


def parse_meminfo(text: str) -> dict[str, int]:
    vals = {}
    for line in text.splitlines():
        k, _, rest = line.partition(":")
        if rest.strip():
            vals[k.strip()] = int(rest.split()[0])
    total, avail = vals.get("MemTotal"), vals.get("MemAvailable")
    if total is None or avail is None:
        return {}
    return {"ram_used_mb": (total - avail) // 1024, "ram_total_mb": total // 1024}


@dataclass
class TegraSampler:
    """tegrastats (or /proc/meminfo when tegrastats is missing) sampled in a thread."""

    interval_ms: int = 10
    records: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""
    _proc: subprocess.Popen[str] | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    t: tuple[float, float] = (0.0, 0.0)

    def start(self) -> TegraSampler:
        self.t = (time.perf_counter(), 0.0)
        if shutil.which("tegrastats"):
            self.source = f"tegrastats --interval {self.interval_ms}"
            self._proc = subprocess.Popen(
                ["tegrastats", "--interval", str(self.interval_ms)], stdout=subprocess.PIPE, text=True
            )
            self._thread = threading.Thread(target=self._read_tegrastats, daemon=True)
        else:
            self.source = "/proc/meminfo"
            self._thread = threading.Thread(target=self._read_meminfo, daemon=True)
        self._thread.start()
        return self

    def _read_tegrastats(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self.records.append(parse_tegrastats(line))
            if self._stop.is_set():
                break

    def _read_meminfo(self) -> None:
        while not self._stop.is_set():
            try:
                self.records.append(parse_meminfo(Path("/proc/meminfo").read_text()))
            except OSError:
                break
            self._stop.wait(self.interval_ms / 1000)

    def stop(self) -> TegraSampler:
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.t = (self.t[0], time.perf_counter())
        return self

    def summary(self, inferences: int | None = None) -> dict[str, Any]:
        return summarize_records(self.records, self.t[1] - self.t[0], inferences, self.source)


def summarize_records(
    records: list[dict[str, Any]], seconds: float, inferences: int | None, source: str
) -> dict[str, Any]:
    def mm(key: str) -> dict[str, float] | None:
        xs = [r[key] for r in records if key in r]
        return {"mean": sum(xs) / len(xs), "max": max(xs)} if xs else None

    out: dict[str, Any] = {
        "source": source,
        "samples": len(records),
        "ram_used_mb": mm("ram_used_mb"),
        "gpu_load_pct": mm("gpu_load_pct"),
        "input_power_mw": mm("input_power_mw"),
    }
    p = out["input_power_mw"]
    if p and seconds > 0:
        energy = p["mean"] / 1000 * seconds
        out["energy_j"] = energy
        if inferences:
            out["energy_per_inference_j"] = energy / inferences
            out["inferences_per_j"] = inferences / energy if energy > 0 else None
    return out


def merge_into_telemetry(tegra: dict[str, Any], tel: dict[str, Any]) -> dict[str, Any]:
    """Jetson figures where NVML gave none: unified RAM as inference memory, rail energy as energy."""
    out: dict[str, Any] = {"jetson": tegra}
    if tegra.get("ram_used_mb") and not tel.get("device_memory_used_mb"):
        out["device_memory_used_mb"] = tegra[
            "ram_used_mb"
        ]  # unified memory: what the reference study reports
    if "energy_j" in tegra and "energy_j" not in tel:
        for k in ("energy_j", "energy_per_inference_j", "inferences_per_j"):
            if k in tegra:
                out[k] = tegra[k]
    return out
