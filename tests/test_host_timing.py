"""Timing on the host: no sampling thread, more samples for a series that would be invalid, a series
that holds two machine speeds is taken again or marked (issue: CPU results valid by default)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pytest_trt.hardware import telemetry
from pytest_trt.measure import latency, timing
from tests.test_timing import _Bench, _FakeEngine, _Feed, _m


def test_host_telemetry_runs_no_thread_and_still_sees_the_peak_rss() -> None:
    before = threading.active_count()
    with telemetry.sampling(None) as s:
        during = threading.active_count()
        block = np.ones(40_000_000 // 8)  # 40 MB touched, then freed before the last reading
        block += 1
        del block
    rss = s.summary()["host_rss_mb"]
    assert during == before
    if s.peak_since_start:  # Linux lets the process restart its high-water mark
        assert rss["max"] - rss["min"] >= 35


def test_host_telemetry_reports_the_hypervisors_share_of_cpu_time() -> None:
    with telemetry.sampling(None) as s:
        pass
    steal = s.summary()["cpu_steal_pct"]
    assert steal is None or 0 <= steal <= 100


def test_a_series_still_too_wide_at_the_time_cap_goes_on_within_the_extra_time() -> None:
    noisy = list(np.random.default_rng(0).lognormal(np.log(0.16), 0.05, 30))
    assert latency.median_ci_rel(noisy) > 0.02
    cfg = timing.TimingConfig(min_rounds=100, max_time_s=5, target_ci=0.005, valid_ci=0.02, extra_time_s=10)
    assert timing.done(noisy, 5.0, cfg, 100) == ""
    assert timing.done(noisy, 15.0, cfg, 100) == "time cap"


def test_a_series_valid_at_the_time_cap_stops_there() -> None:
    calm = list(np.random.default_rng(0).lognormal(np.log(0.16), 0.005, 60))
    cfg = timing.TimingConfig(min_rounds=100, max_time_s=5, target_ci=0.001, valid_ci=0.02, extra_time_s=10)
    assert timing.done(calm, 5.0, cfg, 100) == "time cap"


def test_without_extra_time_the_cap_is_the_cap() -> None:
    noisy = list(np.random.default_rng(0).lognormal(np.log(0.16), 0.05, 30))
    cfg = timing.TimingConfig(max_time_s=5, valid_ci=0.02, extra_time_s=0)
    assert timing.done(noisy, 5.0, cfg, 100) == "time cap"


def _two_levels(n: int, jump: float) -> list[float]:
    rng = np.random.default_rng(1)
    xs = rng.lognormal(np.log(0.02), 0.03, n)
    xs[n // 2 :] *= jump
    return list(xs)


def test_a_series_holding_two_machine_speeds_is_found() -> None:
    found = latency.level_shift(_two_levels(200, 1.65))
    assert found is not None and found[1] / found[0] > 1.5


def test_a_steady_noisy_series_holds_one_speed() -> None:
    noisy = list(np.random.default_rng(2).lognormal(np.log(0.02), 0.15, 400))
    assert latency.level_shift(noisy) is None
    assert latency.level_shift(_two_levels(200, 1.03)) is None


def test_a_series_holding_two_speeds_is_not_valid() -> None:
    ok, reasons, _ = _m(_two_levels(400, 1.65), clock="perf_counter_ns").validity(valid_ci=0.02)
    assert not ok and any(r.startswith("speed changed during timing") for r in reasons)


class _SlowsDown(_FakeEngine):
    """An engine whose machine gets 1.7x slower after ``at`` inferences, for ``span`` of them."""

    def __init__(self, at: int, span: int) -> None:
        super().__init__()
        self.at, self.span = at, span

    def infer(self, feed: object) -> None:
        import time

        self.calls += 1
        slow = self.at <= self.calls < self.at + self.span
        t = time.perf_counter()
        while time.perf_counter() - t < (0.00085 if slow else 0.0005):
            pass


def test_measure_takes_a_series_that_changed_speed_again() -> None:
    eng, bench = _SlowsDown(at=60, span=80), _Bench()
    cfg = timing.TimingConfig(warmup_s=0.0, warmup_min=3, min_rounds=100, max_time_s=5, e2e_rounds=0)
    m = timing.measure(eng, _Feed(), cfg, bench)  # type: ignore[arg-type]
    assert m.retaken.startswith("the first series moved")
    assert latency.level_shift(m.model_s) is None and bench.rounds == pytest.approx(m.model_s)
    assert np.median(m.model_s) < 0.0006  # the engine's own speed, not the slowed machine's
