"""Timing maths, validity rules, and the virtual clock through pytest-benchmark's pedantic mode."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_trt.measure import latency, timing
from tests.conftest import load_json


@given(st.lists(st.floats(1e-6, 1.0), min_size=2, max_size=200), st.sampled_from([50, 90, 95, 99]))
def test_percentile_matches_numpy(xs: list[float], q: int) -> None:
    assert latency.percentile(sorted(xs), q) == pytest.approx(float(np.percentile(xs, q)))


def test_summarize_ms_and_cov_and_only_supported_percentiles() -> None:
    s = latency.summarize([0.001, 0.002, 0.003])
    assert (
        s["mean"] == pytest.approx(2.0)
        and s["median"] == pytest.approx(2.0)
        and s["max"] == pytest.approx(3.0)
    )
    assert s["stddev"] == pytest.approx(statistics.stdev([1, 2, 3]))
    assert s["cov"] == pytest.approx(0.5) and s["n"] == 3
    assert s["p90"] is None and s["p99"] is None  # 3 samples cannot say what the 99th percentile is
    long = latency.summarize(list(np.linspace(0.001, 0.002, 100)))
    assert long["p99"] == pytest.approx(float(np.percentile(np.linspace(1, 2, 100), 99)))


def test_median_ci_covers_the_true_median_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(2000):
        lo, hi = latency.median_ci(rng.lognormal(0.0, 0.3, 101))
        hits += lo <= 1.0 <= hi  # lognormal(0, s) has median exactly 1
    assert 0.93 <= hits / 2000 <= 0.985


def test_stop_rule_precision_count_and_caps() -> None:
    cfg = timing.TimingConfig(min_rounds=100, max_time_s=10, target_ci=0.005)
    steady = list(np.full(100, 0.002))
    assert timing.done(steady[:99], 0.1, cfg, 100) == ""  # p99 needs 100 samples first
    assert timing.done(steady, 0.1, cfg, 100) == "precision"
    noisy = list(np.random.default_rng(0).lognormal(np.log(0.002), 0.2, 150))
    assert timing.done(noisy, 0.1, cfg, 100) == ""  # +-0.5% not reached with this spread
    assert timing.done(noisy, 10.0, cfg, 100) == "time cap"
    assert timing.done(steady[:5], 10.0, cfg, 100) == "time cap"  # a slow model stops at the cap
    assert timing.done(steady, 0.1, timing.TimingConfig(target_ci=0), 100) == "fixed rounds"
    assert timing.chunk_size(50e-6, cfg, gpu=True) == 256 and timing.chunk_size(0.02, cfg, gpu=True) == 3
    assert timing.chunk_size(50e-6, cfg, gpu=False) == 1
    # sub-millisecond GPU work: one sample is the mean of 1 ms of inferences (an event costs ~2 us)
    assert timing.group_size(50e-6, cfg, gpu=True) == 20 and timing.group_size(0.002, cfg, gpu=True) == 1
    assert timing.group_size(50e-6, cfg, gpu=False) == 1
    assert timing.chunk_size(50e-6, cfg, gpu=True, group=20) == 50
    assert timing.TimingConfig(warmup_fraction=0.1, dataset_size=5000).warmup_iterations(batch=10) == 50


def _m(samples: list[float], enq: list[float] | None = None, clock: str = "cuda_event") -> timing.Measurement:
    m = timing.Measurement(model_s=samples, enqueue_s=enq or [s * 0.1 for s in samples], clock=clock)
    return m


def test_validity_rules() -> None:
    steady = [0.005] * 150
    assert _m(steady).validity()[0] is True
    # a wide spread with a well-known median is valid (a note), a median not known to +-1% is not
    spread = list(np.random.default_rng(0).lognormal(np.log(0.005), 0.05, 2000))
    ok, reasons, notes = _m(spread).validity()
    assert ok and any("coefficient of variation" in n for n in notes)
    ok, reasons, _ = _m(spread[:60]).validity()
    assert not ok and "median not pinned down" in reasons[0]
    ok, reasons, notes = _m([0.005] * 30).validity()
    assert ok and any("p99 not reported: 30 samples" in n for n in notes)
    ok, reasons, _ = _m(steady).validity(clocks_changed=True, throttle_reasons=["HwSlowdown"])
    assert not ok and any("clocks changed" in r for r in reasons) and any("HwSlowdown" in r for r in reasons)
    _, _, notes = _m(steady, enq=[0.0045] * 150).validity()
    assert any(n.startswith("enqueue-bound") for n in notes)
    m = _m(steady)
    m.e2e_s, m.h2d_s, m.compute_in_e2e_s, m.d2h_s = [0.02] * 10, [0.01] * 10, [0.005] * 10, [0.001] * 10
    _, _, notes = m.validity(io="device")
    assert any(n.startswith("transfer-bound: median H2D") for n in notes)


def test_throughput_is_batch_times_qps() -> None:
    t = latency.throughput({"median": 4.0, "mean": 5.0, "p99": 6.0}, batch=32)
    assert t["samples_per_s_median"] == pytest.approx(8000) and t["p99_over_p50"] == pytest.approx(1.5)


def test_virtual_clock_feeds_pedantic_stats(pytester: pytest.Pytester) -> None:
    """A target that advances the clock by known amounts: pytest-benchmark must report exactly those."""
    pytester.makepyfile("""
import pytest
from pytest_trt.measure.timing import VIRTUAL_CLOCK

DUR = [0.002, 0.004, 0.003, 0.001, 0.005] * 4

@pytest.mark.benchmark(timer=VIRTUAL_CLOCK)
def test_v(benchmark):
    it = iter(DUR)
    benchmark.pedantic(lambda: VIRTUAL_CLOCK.advance(next(it)), rounds=20, iterations=1)
""")
    out = pytester.path / "v.json"
    r = pytester.runpytest("-p", "no:cacheprovider", f"--benchmark-json={out}")
    r.assert_outcomes(passed=1)
    st_ = load_json(out)["benchmarks"][0]["stats"]
    assert st_["min"] == pytest.approx(0.001) and st_["max"] == pytest.approx(0.005)
    assert st_["median"] == pytest.approx(0.003) and st_["rounds"] == 20
    assert st_["p50"] == pytest.approx(0.003) and st_["p90"] == pytest.approx(0.005)
    assert "p99" not in st_  # 20 samples do not support a 99th percentile


class _FakeEngine:
    """A CPU 'engine' that sleeps: measure() must time it with perf_counter and honour rounds/min time."""

    stream = None

    def __init__(self) -> None:
        from pytest_trt.engines.protocol import EngineInfo
        from pytest_trt.engines.recipes import Recipe

        self.info = EngineInfo("fake", "0", Recipe("fp32", "fp32"))
        self.calls = 0

    jitter = 0.0

    def infer(self, feed: object) -> None:
        import random
        import time

        self.calls += 1
        t = time.perf_counter()
        dur = 0.0005 * (1 + self.jitter * random.random())
        while time.perf_counter() - t < dur:
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


class _Bench:
    """pytest-benchmark's fixture as measure() uses it: pedantic rounds read the virtual clock."""

    disabled = False

    def __init__(self) -> None:
        self.rounds: list[float] = []

    def pedantic(self, fn: object, rounds: int, iterations: int, warmup_rounds: int) -> None:
        for _ in range(rounds):
            t0 = timing.VIRTUAL_CLOCK()
            fn()  # type: ignore[operator]
            self.rounds.append(timing.VIRTUAL_CLOCK() - t0)


def test_adaptive_measure_stops_on_precision_and_replays_every_sample() -> None:
    eng, bench = _FakeEngine(), _Bench()
    cfg = timing.TimingConfig(warmup_s=0.01, warmup_min=3, min_rounds=100, max_time_s=5, e2e_rounds=5)
    m = timing.measure(eng, _Feed(), cfg, bench)  # type: ignore[arg-type]
    assert m.stopped_by == "precision" and 100 <= len(m.model_s) < 2000
    assert latency.median_ci_rel(m.model_s) <= 0.005
    assert bench.rounds == pytest.approx(m.model_s)  # pytest-benchmark sees exactly the measured times
    assert len(m.e2e_s) >= 5


def test_adaptive_measure_gives_up_at_the_time_cap_on_a_jittery_engine() -> None:
    eng, bench = _FakeEngine(), _Bench()
    eng.jitter = 1.0  # 0.5-1 ms at random: a median CI of +-0.01% is out of reach
    cfg = timing.TimingConfig(warmup_s=0.01, warmup_min=3, min_rounds=50, max_time_s=0.3, target_ci=0.0001)
    m = timing.measure(eng, _Feed(), cfg, bench)  # type: ignore[arg-type]
    assert m.stopped_by == "time cap" and len(bench.rounds) == len(m.model_s) >= 50
