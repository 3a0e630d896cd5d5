"""Jetson support on recorded outputs (written from NVIDIA's documented formats; no board here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_trt.hardware import jetson

NANO_JP4 = (
    "RAM 2038/3956MB (lfb 4x4MB) SWAP 0/1978MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [12%@1479,4%@1479,0%@1479,0%@1479] EMC_FREQ 0%@1600 GR3D_FREQ 37%@921 APE 25 PLL@33C CPU@36C "
    "PMIC@100C GPU@33.5C AO@42C thermal@34.5C POM_5V_IN 2542/2542 POM_5V_GPU 412/400 POM_5V_CPU 445/445"
)
XAVIER_JP5 = (
    "RAM 2447/7765MB (lfb 1006x4MB) SWAP 0/3882MB (cached 0MB) CPU [2%@1190,1%@1190,off,off,off,off] "
    "EMC_FREQ 0%@1600 GR3D_FREQ 0%@114 VIC_FREQ 115 APE 150 AUX@36C CPU@37.5C thermal@36.95C AO@36.5C "
    "GPU@35C PMIC@50C VDD_IN 3785mW/3785mW VDD_CPU_GPU_CV 409mW/409mW VDD_SOC 1227mW/1227mW"
)
ORIN_JP6 = (
    "11-21-2026 10:00:00 RAM 3520/30536MB (lfb 6315x4MB) SWAP 0/15268MB (cached 0MB) "
    "CPU [1%@729,0%@729,3%@729,0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 64%@[305,305] VIC_FREQ 729 APE 174 "
    "CV0@-256C CPU@41.906C SOC2@38.5C SOC0@39.343C GPU@38.781C tj@41.906C VDD_GPU_SOC 2784mW/2784mW "
    "VDD_CPU_CV 398mW/398mW VIN_SYS_5V0 3734mW/3734mW"
)


@pytest.mark.parametrize(
    ("line", "ram", "gpu_load", "power"),
    [(NANO_JP4, 2038, 37, 2542), (XAVIER_JP5, 2447, 0, 3785), (ORIN_JP6, 3520, 64, 3734)],
    ids=["nano-jp4", "xavier-jp5", "orin-jp6"],
)
def test_tegrastats_lines(line: str, ram: int, gpu_load: int, power: int) -> None:
    r = jetson.parse_tegrastats(line)
    assert r["ram_used_mb"] == ram and r["gpu_load_pct"] == gpu_load and r["input_power_mw"] == power
    assert r["ram_total_mb"] > ram and r["rails_mw"] and "GPU" in r["temps_c"]


def test_orin_gpu_frequency_list_and_rails() -> None:
    r = jetson.parse_tegrastats(ORIN_JP6)
    assert r["gpu_freq_mhz"] == 305 and r["rails_mw"]["VDD_GPU_SOC"] == 2784


def test_energy_from_power_rails() -> None:
    recs = [jetson.parse_tegrastats(ORIN_JP6)] * 4
    s = jetson.summarize_records(recs, seconds=2.0, inferences=100, source="tegrastats")
    assert s["ram_used_mb"]["max"] == 3520
    assert s["energy_j"] == pytest.approx(3.734 * 2.0)
    assert s["energy_per_inference_j"] == pytest.approx(3.734 * 2.0 / 100)


def test_nvpmodel_and_release_and_clocks() -> None:
    pm = jetson.parse_nvpmodel("NV Power Mode: MODE_15W\n1\n")
    assert pm == {"mode": 1, "name": "MODE_15W", "budget_w": 15}
    assert jetson.parse_nvpmodel("NV Power Mode: MAXN\n0")["budget_w"] is None
    rel = jetson.parse_release(
        "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64"
    )
    assert rel == {"l4t": "35.4.1", "jetpack": "5.1.2", "board_config": "t186ref"}
    show = "SOC family:tegra234  Machine:NVIDIA Jetson AGX Orin\nGPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000"
    assert jetson.jetson_clocks_state(show) == "locked"
    assert (
        jetson.jetson_clocks_state("GPU MinFreq=306000000 MaxFreq=1300500000 CurrentFreq=306000000")
        == "dynamic"
    )


def test_detection_from_fake_files(tmp_path: Path) -> None:
    rel, model = tmp_path / "nv_tegra_release", tmp_path / "model"
    assert jetson.detect(rel, model, query_tools=False) is None
    model.write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\x00")
    rel.write_text("# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64")
    info = jetson.detect(rel, model, query_tools=False)
    assert info == {
        "board": "NVIDIA Jetson Orin Nano Developer Kit",
        "l4t": "36.3.0",
        "jetpack": "6.0",
        "board_config": "generic",
    }
    model.write_bytes(b"Raspberry Pi 5\x00")
    rel.unlink()
    assert jetson.detect(rel, model, query_tools=False) is None


def test_meminfo_fallback() -> None:
    m = jetson.parse_meminfo("MemTotal:       7765000 kB\nMemFree: 100 kB\nMemAvailable:   5318000 kB\n")
    assert m == {"ram_used_mb": (7765000 - 5318000) // 1024, "ram_total_mb": 7765000 // 1024}


def test_power_mode_switch_refused_without_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jetson.shutil, "which", lambda name: None)
    ok, msg = jetson.set_power_mode(1, settle_s=0)
    assert not ok and "nvpmodel not found" in msg


def test_power_mode_condition_skips_off_board(
    pytester: pytest.Pytester, bench_file: Path, shared_cache: Path
) -> None:
    from tests.conftest import fast_args

    r = pytester.runpytest(
        *fast_args(shared_cache, "--trt-backend=onnxruntime", "--trt-precision=fp32", "--trt-batch=1"),
        "--trt-power-mode=0,1",
        "-rs",
    )
    r.assert_outcomes(skipped=1)
    r.stdout.fnmatch_lines(["*--trt-power-mode [[]0, 1[]]: not a Jetson board*"])


def test_refused_clock_lock_does_not_fail_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_trt.engines.protocol import Device
    from pytest_trt.hardware import clocks, telemetry

    class NoPermission(Exception):
        pass

    class FakeNvml:
        NVML_CLOCK_SM = 0

        def nvmlDeviceGetMaxClockInfo(self, h: object, c: int) -> int:
            return 1980

        def nvmlDeviceSetGpuLockedClocks(self, h: object, lo: int, hi: int) -> None:
            raise NoPermission("Insufficient Permissions")

    monkeypatch.setattr(telemetry, "nvml", lambda: FakeNvml())
    monkeypatch.setattr(telemetry, "visible_handles", lambda: [(0, object())])
    lock = clocks.lock("max", Device("cuda", 0, "fake"))
    assert not lock.locked and "refused: Insufficient Permissions" in lock.message
    lock.restore()  # nothing to restore, and no error
    cpu = clocks.lock("max", Device("cpu"))
    assert not cpu.locked and "no GPU" in cpu.message


def test_tegrastats_figures_become_memory_and_energy() -> None:
    tegra = jetson.summarize_records(
        [jetson.parse_tegrastats(ORIN_JP6)] * 3, 1.0, 10, "tegrastats --interval 10"
    )
    merged = jetson.merge_into_telemetry(tegra, {"device_memory_used_mb": None})
    assert merged["device_memory_used_mb"]["max"] == 3520
    assert merged["energy_per_inference_j"] == pytest.approx(3.734 / 10)
    nvml_first = jetson.merge_into_telemetry(tegra, {"device_memory_used_mb": {"max": 1.0}, "energy_j": 2.0})
    assert "device_memory_used_mb" not in nvml_first and "energy_j" not in nvml_first


def test_sampler_falls_back_to_meminfo(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setattr(jetson.shutil, "which", lambda name: None)
    s = jetson.TegraSampler(interval_ms=5).start()
    time.sleep(0.05)
    summary = s.stop().summary(inferences=10)
    assert summary["source"] == "/proc/meminfo" and summary["samples"] >= 2
    assert summary["ram_used_mb"]["max"] > 0
