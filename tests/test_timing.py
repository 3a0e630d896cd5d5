"""Timing maths, validity rules, and the virtual clock through pytest-benchmark's pedantic mode."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_trt import timing
from tests.conftest import load_json


@given(st.lists(st.floats(1e-6, 1.0), min_size=2, max_size=200), st.sampled_from([50, 90, 95, 99]))
def test_percentile_matches_numpy(xs: list[float], q: int) -> None:
    assert timing.percentile(sorted(xs), q) == pytest.approx(float(np.percentile(xs, q)))


def test_summarize_ms_and_cov() -> None:
    s = timing.summarize([0.001, 0.002, 0.003])
    assert (
        s["mean"] == pytest.approx(2.0)
        and s["median"] == pytest.approx(2.0)
        and s["max"] == pytest.approx(3.0)
    )
    assert s["stddev"] == pytest.approx(statistics.stdev([1, 2, 3]))
    assert s["cov"] == pytest.approx(0.5) and s["n"] == 3


def test_plan_rounds_meets_count_and_duration() -> None:
    cfg = timing.TimingConfig(min_rounds=100, min_time_s=1.0, max_time_s=10)
    assert timing.plan_rounds(0.001, cfg) == 1000  # duration dominates
    assert timing.plan_rounds(0.1, cfg) == 100  # count dominates
    assert timing.plan_rounds(1.0, cfg) == 100  # cap never drops below the minimum count
    assert timing.TimingConfig(warmup_fraction=0.1, dataset_size=5000).warmup_iterations(batch=10) == 50


def _m(samples: list[float], enq: list[float] | None = None, clock: str = "cuda_event") -> timing.Measurement:
    m = timing.Measurement(model_s=samples, enqueue_s=enq or [s * 0.1 for s in samples], clock=clock)
    return m


def test_validity_rules() -> None:
    steady = [0.005] * 150
    assert timing.validity(_m(steady))[0] is True
    noisy = list(np.random.default_rng(0).normal(0.005, 0.0005, 150))
    ok, reasons, _ = timing.validity(_m(noisy))
    assert not ok and "coefficient of variation" in reasons[0]
    ok, reasons, _ = timing.validity(_m([0.005] * 30))
    assert not ok and "too few samples for p99: 30 < 100" in reasons
    ok, reasons, _ = timing.validity(_m(steady), clocks_changed=True, throttle_reasons=["HwSlowdown"])
    assert not ok and any("clocks changed" in r for r in reasons) and any("HwSlowdown" in r for r in reasons)
    _, _, notes = timing.validity(_m(steady, enq=[0.0045] * 150))
    assert any(n.startswith("enqueue-bound") for n in notes)
    m = _m(steady)
    m.e2e_s, m.h2d_s, m.compute_in_e2e_s, m.d2h_s = [0.02] * 10, [0.01] * 10, [0.005] * 10, [0.001] * 10
    _, _, notes = timing.validity(m, io="device")
    assert any(n.startswith("transfer-bound: median H2D") for n in notes)


def test_throughput_is_batch_times_qps() -> None:
    t = timing.throughput({"median": 4.0, "mean": 5.0, "p99": 6.0}, batch=32)
    assert t["samples_per_s_median"] == pytest.approx(8000) and t["p99_over_p50"] == pytest.approx(1.5)


def test_virtual_clock_feeds_pedantic_stats(pytester: pytest.Pytester) -> None:
    """A target that advances the clock by known amounts: pytest-benchmark must report exactly those."""
    pytester.makepyfile("""
import pytest
from pytest_trt.timing import VIRTUAL_CLOCK

DUR = [0.002, 0.004, 0.003, 0.001, 0.005]

@pytest.mark.benchmark(timer=VIRTUAL_CLOCK)
def test_v(benchmark):
    it = iter(DUR)
    benchmark.pedantic(lambda: VIRTUAL_CLOCK.advance(next(it)), rounds=5, iterations=1)
""")
    out = pytester.path / "v.json"
    r = pytester.runpytest("-p", "no:cacheprovider", f"--benchmark-json={out}")
    r.assert_outcomes(passed=1)
    st_ = load_json(out)["benchmarks"][0]["stats"]
    assert st_["min"] == pytest.approx(0.001) and st_["max"] == pytest.approx(0.005)
    assert st_["median"] == pytest.approx(0.003) and st_["rounds"] == 5
    assert st_["p50"] == pytest.approx(0.003) and st_["p90"] == pytest.approx(0.0046)


class _FakeEngine:
    """A CPU 'engine' that sleeps: measure() must time it with perf_counter and honour rounds/min time."""

    stream = None

    def __init__(self) -> None:
        from pytest_trt.backends.base import EngineInfo
        from pytest_trt.recipes import Recipe

        self.info = EngineInfo("fake", "0", Recipe("fp32", "fp32"))
        self.calls = 0

    def infer(self, feed: object) -> None:
        import time

        self.calls += 1
        t = time.perf_counter()
        while time.perf_counter() - t < 0.0005:
            pass

    def h2d(self, feed: object) -> None: ...
    def d2h(self, out: object) -> list[np.ndarray]:
        return []

    def sync(self) -> None: ...
    def capture_graph(self, feed: object) -> bool:
        return False


class _Feed:
    batch = 4


def test_measure_without_benchmark_records_series(tmp_path: Path) -> None:
    eng = _FakeEngine()
    cfg = timing.TimingConfig(warmup_s=0.01, warmup_min=3, min_rounds=20, min_time_s=0.0, e2e_rounds=5)
    m = timing.measure(eng, _Feed(), cfg, None)  # type: ignore[arg-type]
    assert len(m.model_s) == 20 and len(m.e2e_s) == 5 and m.warmup_iterations >= 3
    assert all(s >= 0.0005 for s in m.model_s) and m.clock == "perf_counter_ns"
    lat = m.latency_ms()
    assert {"model", "enqueue", "e2e", "h2d", "d2h"} <= set(lat) and lat["model"]["median"] >= 0.5
