"""Measurement: warm-up, the timed loop, the latency breakdown and the statistics of it.

GPU time comes from CUDA events recorded on the engine's stream around every iteration; CPU backends
use ``perf_counter_ns``.  Either way the per-iteration time advances a :class:`VirtualClock` that
pytest-benchmark uses as its timer in pedantic mode with ``iterations=1``, so pytest-benchmark's own
stats, JSON, ``--benchmark-compare`` and ``--benchmark-compare-fail`` all see device time, not launch
time.  The queue is drained before and after, and garbage collection is off inside timed loops.

Three series are kept (the reference study's latency-model vs latency-all; trtexec's breakdown):
``model`` (inputs already on the device), ``e2e`` (pinned H2D + model + D2H, with each part), and
``enqueue`` (host time to submit one inference).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_trt.backends.base import Engine, Feed

PERCENTILES = (50, 90, 95, 99)
COV_LIMIT = 0.025  # trtexec's "GPU compute time is unstable" threshold
ENQUEUE_BOUND = 0.8  # trtexec: median enqueue > 0.8 x median compute
MIN_SAMPLES_FOR = {50: 10, 90: 20, 95: 40, 99: 100}  # fewer samples than this make a percentile unreliable


class VirtualClock:
    """A clock that moves only when told: pytest-benchmark reads it before and after each round."""

    __name__ = "pytest_trt_virtual_clock"  # shown as options.timer in the JSON

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def __repr__(self) -> str:
        return "pytest_trt.timing.VIRTUAL_CLOCK"


VIRTUAL_CLOCK = VirtualClock()


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of already sorted values (numpy's default definition)."""
    n = len(sorted_values)
    if n == 0:
        return math.nan
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """Latency statistics in milliseconds: mean, median, p90/p95/p99, min, max, stddev, CoV, n."""
    xs = sorted(float(s) * 1e3 for s in seconds)
    n = len(xs)
    if n == 0:
        return {"n": 0}
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    out = {
        "n": n,
        "mean": mean,
        "median": percentile(xs, 50),
        "min": xs[0],
        "max": xs[-1],
        "stddev": sd,
        "cov": sd / mean if mean > 0 else 0.0,
    }
    for q in (90, 95, 99):
        out[f"p{q}"] = percentile(xs, q)
    return out


@dataclass
class TimingConfig:
    warmup_s: float = 0.2
    warmup_min: int = 10
    warmup_fraction: float | None = None  # "10% of the dataset" warm-up (reference study)
    dataset_size: int | None = None
    min_rounds: int = 100
    min_time_s: float = 1.0
    max_rounds: int = 100_000
    max_time_s: float = 60.0
    e2e_rounds: int = 100  # end-to-end iterations (with copies), after the model loop
    cuda_graph: str = "auto"

    def warmup_iterations(self, batch: int) -> int:
        n = self.warmup_min
        if self.warmup_fraction and self.dataset_size:
            n = max(n, math.ceil(self.warmup_fraction * self.dataset_size / max(batch, 1)))
        return n


@dataclass
class Measurement:
    model_s: list[float] = field(default_factory=list)
    enqueue_s: list[float] = field(default_factory=list)
    e2e_s: list[float] = field(default_factory=list)
    h2d_s: list[float] = field(default_factory=list)
    d2h_s: list[float] = field(default_factory=list)
    compute_in_e2e_s: list[float] = field(default_factory=list)
    warmup_iterations: int = 0
    warmup_seconds: float = 0.0
    wall_seconds: float = 0.0
    clock: str = "perf_counter_ns"
    cuda_graph: bool = False

    def latency_ms(self) -> dict[str, dict[str, float]]:
        out = {"model": summarize(self.model_s), "enqueue": summarize(self.enqueue_s)}
        if self.e2e_s:
            out["e2e"] = summarize(self.e2e_s)
            out["h2d"] = summarize(self.h2d_s)
            out["d2h"] = summarize(self.d2h_s)
            out["compute_in_e2e"] = summarize(self.compute_in_e2e_s)
        return out


class Stepper:
    """One timed inference at a time, on the engine's stream (CUDA events) or on the host."""

    def __init__(self, engine: Engine, feed: Feed) -> None:
        self.engine = engine
        self.feed = feed
        self.stream = engine.stream
        if self.stream is not None:
            import torch

            self._ev = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
            self.clock = "cuda_event"
        else:
            self.clock = "perf_counter_ns"

    def model(self) -> tuple[float, float]:
        """(device time, host enqueue time) of one inference, in seconds."""
        e = self.engine
        if self.stream is None:
            t0 = time.perf_counter_ns()
            e.infer(self.feed)
            e.sync()
            dt = (time.perf_counter_ns() - t0) * 1e-9
            return dt, dt
        start, end, stream, feed = self._ev[0], self._ev[1], self.stream, self.feed
        # Enqueue time brackets the start event too, so that no host clock call sits inside the GPU window.
        t0 = time.perf_counter_ns()
        start.record(stream)
        e.infer(feed)
        end.record(stream)
        t1 = time.perf_counter_ns()
        end.synchronize()
        return start.elapsed_time(end) * 1e-3, (t1 - t0) * 1e-9

    def e2e(self) -> tuple[float, float, float, float]:
        """(total, h2d, compute, d2h) seconds of one inference from pinned host memory and back."""
        e = self.engine
        if self.stream is None:
            t0 = time.perf_counter_ns()
            e.h2d(self.feed)
            t1 = time.perf_counter_ns()
            out = e.infer(self.feed)
            t2 = time.perf_counter_ns()
            e.d2h(out)
            e.sync()
            t3 = time.perf_counter_ns()
            return (t3 - t0) * 1e-9, (t1 - t0) * 1e-9, (t2 - t1) * 1e-9, (t3 - t2) * 1e-9
        a, b, c, d = self._ev
        a.record(self.stream)
        e.h2d(self.feed)
        b.record(self.stream)
        out = e.infer(self.feed)
        c.record(self.stream)
        e.d2h(out)
        d.record(self.stream)
        d.synchronize()
        return (
            a.elapsed_time(d) * 1e-3,
            a.elapsed_time(b) * 1e-3,
            b.elapsed_time(c) * 1e-3,
            c.elapsed_time(d) * 1e-3,
        )


def plan_rounds(per_iter_s: float, cfg: TimingConfig) -> int:
    """Rounds that satisfy both the minimum count and the minimum duration, within the caps."""
    per = max(per_iter_s, 1e-7)
    want = max(cfg.min_rounds, math.ceil(cfg.min_time_s / per))
    cap = max(cfg.min_rounds, int(cfg.max_time_s / per))
    return int(min(want, cfg.max_rounds, cap))


def warm_up(
    step: Callable[[], tuple[float, float]], cfg: TimingConfig, batch: int
) -> tuple[int, float, float]:
    """Run until both the warm-up time and count are reached; return (iterations, seconds, median s)."""
    need = cfg.warmup_iterations(batch)
    t0 = time.perf_counter()
    recent: list[float] = []
    n = 0
    while n < need or time.perf_counter() - t0 < cfg.warmup_s:
        recent.append(step()[0])
        n += 1
        if time.perf_counter() - t0 > max(cfg.max_time_s, cfg.warmup_s) and n >= 1:
            break  # a single iteration longer than the cap: do not warm up forever
    tail = sorted(recent[-max(3, n // 2) :])
    return n, time.perf_counter() - t0, tail[len(tail) // 2]


def measure(engine: Engine, feed: Feed, cfg: TimingConfig, benchmark: Any | None) -> Measurement:
    """Warm up, then time ``engine`` on ``feed``; feed the model series through ``benchmark``.

    ``benchmark`` is pytest-benchmark's fixture (its timer must be :data:`VIRTUAL_CLOCK`), or None to
    time without recording (used by tests and by ``--benchmark-disable`` runs).
    """
    m = Measurement()
    step = Stepper(engine, feed)
    m.clock = step.clock
    engine.sync()  # nothing queued by earlier tests may land in our numbers
    if cfg.cuda_graph in ("auto", "on") and engine.stream is not None:
        m.cuda_graph = engine.capture_graph(feed)
        if cfg.cuda_graph == "on" and not m.cuda_graph:
            engine.info.warnings.append("--trt-cuda-graph on: capture failed; timed without a graph")
    gc.collect()
    t_start = time.perf_counter()
    m.warmup_iterations, m.warmup_seconds, per_iter = warm_up(step.model, cfg, feed.batch)
    rounds = plan_rounds(per_iter, cfg)
    disabled = benchmark is None or getattr(benchmark, "disabled", False)
    gc_was = gc.isenabled()
    gc.disable()
    try:
        if disabled:
            if benchmark is not None:
                benchmark(lambda: None)  # --benchmark-disable: run once, record nothing
            for _ in range(min(rounds, cfg.min_rounds)):
                dt, enq = step.model()
                m.model_s.append(dt)
                m.enqueue_s.append(enq)
        else:
            assert benchmark is not None

            def one() -> None:
                dt, enq = step.model()
                VIRTUAL_CLOCK.advance(dt)
                m.model_s.append(dt)
                m.enqueue_s.append(enq)

            benchmark.pedantic(one, rounds=rounds, iterations=1, warmup_rounds=0)
        for _ in range(min(cfg.e2e_rounds, rounds)):
            total, h2d, comp, d2h = step.e2e()
            m.e2e_s.append(total)
            m.h2d_s.append(h2d)
            m.compute_in_e2e_s.append(comp)
            m.d2h_s.append(d2h)
    finally:
        if gc_was:
            gc.enable()
        engine.sync()
    m.wall_seconds = time.perf_counter() - t_start
    return m


def throughput(latency: dict[str, float], batch: int) -> dict[str, float]:
    """Samples/s (qps x batch) from a latency summary, and the tail ratio p99/p50."""
    med = latency.get("median", math.nan)
    mean = latency.get("mean", math.nan)
    return {
        "samples_per_s_median": batch * 1e3 / med if med and med > 0 else math.nan,
        "samples_per_s_mean": batch * 1e3 / mean if mean and mean > 0 else math.nan,
        "qps_median": 1e3 / med if med and med > 0 else math.nan,
        "p99_over_p50": latency.get("p99", math.nan) / med if med and med > 0 else math.nan,
    }


def validity(
    m: Measurement,
    *,
    clocks_changed: bool | None = None,
    throttle_reasons: Sequence[str] = (),
    io: str = "device",
) -> tuple[bool, list[str], list[str]]:
    """(valid, reasons, notes) from the run's own statistics, trtexec-style.

    Reasons make a result invalid for gating: unstable timing, too few samples for p99, clocks that
    moved.  Notes describe the workload (enqueue- or transfer-bound) without invalidating it.
    """
    reasons: list[str] = []
    notes: list[str] = []
    lat = summarize(m.model_s)
    n = int(lat.get("n", 0))
    if n == 0:
        return False, ["no samples"], notes
    if lat["cov"] > COV_LIMIT:
        reasons.append(f"unstable: coefficient of variation {lat['cov'] * 100:.1f}% > {COV_LIMIT * 100:.1f}%")
    if n < MIN_SAMPLES_FOR[99]:
        reasons.append(f"too few samples for p99: {n} < {MIN_SAMPLES_FOR[99]}")
    if clocks_changed:
        reasons.append("GPU clocks changed during the run (lock clocks for stable numbers)")
    if throttle_reasons:
        reasons.append("throttled: " + ", ".join(throttle_reasons))
    if m.clock == "cuda_event":
        enq = summarize(m.enqueue_s)
        if not m.cuda_graph and enq.get("median", 0) > ENQUEUE_BOUND * lat["median"]:
            notes.append(
                f"enqueue-bound: median enqueue {enq['median']:.3f} ms > {ENQUEUE_BOUND} x compute "
                f"{lat['median']:.3f} ms (try --trt-cuda-graph on)"
            )
    if m.e2e_s and io == "device":
        comp = float(np.median(m.compute_in_e2e_s))
        for part, xs in (("H2D", m.h2d_s), ("D2H", m.d2h_s)):
            if xs and float(np.median(xs)) >= comp:
                notes.append(f"transfer-bound: median {part} {float(np.median(xs)) * 1e3:.3f} ms >= compute")
    return not reasons, reasons, notes
