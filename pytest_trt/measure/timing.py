"""Measurement: warm-up, the adaptive timed loop and the latency breakdown.

GPU time is taken trtexec-style: inferences are enqueued back to back in chunks with a CUDA event
between samples (one sample = one inference, or the mean of ~1 ms of them for sub-millisecond work),
and the host synchronises once per chunk, never inside it; one untimed inference leads each chunk so
that the first event is recorded on a busy GPU.  Each sample is thus the GPU's back-to-back time, free
of launch latency (which a sync per iteration puts inside every sample of a sub-100 us workload).  CPU backends are timed per inference with ``perf_counter_ns``.

Measurement is adaptive: it stops once the median's 95 % confidence interval is within
``target_ci`` (default +-0.5 %) and there are enough samples for every percentile reported, or when
the time cap is reached; a series whose CI is still wider than ``valid_ci`` at the cap (it would be
marked invalid) goes on for up to ``extra_time_s`` more.  The samples are then replayed through a :class:`VirtualClock` that
pytest-benchmark uses as its timer in pedantic mode, so its stats, JSON and ``--benchmark-compare``
all see device time.  The queue is drained before and after; garbage collection is off while timing.

Three series are kept (the reference study's latency-model vs latency-all; trtexec's breakdown):
``model`` (inputs already on the device), ``e2e`` (pinned H2D + model + D2H, with each part), and
``enqueue`` (host time to submit one inference).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_trt.engines.protocol import Engine, Feed
from pytest_trt.measure import latency


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
        return "pytest_trt.measure.timing.VIRTUAL_CLOCK"


VIRTUAL_CLOCK = VirtualClock()


@dataclass
class TimingConfig:
    warmup_s: float = 0.2
    warmup_min: int = 10
    warmup_fraction: float | None = None  # "10% of the dataset" warm-up (reference study)
    dataset_size: int | None = None
    min_rounds: int = 100  # p99 needs 100 samples
    min_time_s: float = 0.0  # optional floor on timed seconds
    max_rounds: int = 100_000
    max_time_s: float = 10.0  # cap on the model loop; the end-to-end loop gets a quarter of it
    target_ci: float = 0.005  # stop once the median's 95 % CI is within +-0.5 %; 0: fixed rounds
    valid_ci: float = 0.0  # at the time cap, go on while the CI is wider than this (0: stop at the cap)
    extra_time_s: float = 0.0  # ... for at most this many seconds more
    e2e_rounds: int = 10  # minimum end-to-end iterations (with copies), after the model loop
    cuda_graph: str = "auto"
    chunk_s: float = 0.05  # GPU work enqueued between two host synchronisations
    group_s: float = 0.001  # below this per inference, one sample = the mean of several inferences

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
    chunk: int = 1  # samples per host synchronisation in the model loop
    group: int = 1  # inferences per sample (their mean): > 1 only for sub-millisecond GPU work
    stopped_by: str = ""  # "precision" | "time cap" | "round cap" | "fixed rounds"
    retaken: str = ""  # why the model series was taken a second time ("" if it was not)

    def latency_ms(self) -> dict[str, dict[str, Any]]:
        out = {"model": latency.summarize(self.model_s), "enqueue": latency.summarize(self.enqueue_s)}
        if self.e2e_s:
            out["e2e"] = latency.summarize(self.e2e_s)
            out["h2d"] = latency.summarize(self.h2d_s)
            out["d2h"] = latency.summarize(self.d2h_s)
            out["compute_in_e2e"] = latency.summarize(self.compute_in_e2e_s)
        return out

    def validity(self, **kw: Any) -> tuple[bool, list[str], list[str]]:
        return latency.validity(
            self.model_s,
            clock=self.clock,
            enqueue_s=self.enqueue_s,
            cuda_graph=self.cuda_graph,
            h2d_s=self.h2d_s,
            d2h_s=self.d2h_s,
            compute_in_e2e_s=self.compute_in_e2e_s,
            **kw,
        )


class Stepper:
    """Timed inferences on the engine's stream (CUDA events) or on the host."""

    def __init__(self, engine: Engine, feed: Feed) -> None:
        self.engine = engine
        self.feed = feed
        self.stream = engine.stream
        self._events: list[Any] = []
        self.clock = "cuda_event" if self.stream is not None else "perf_counter_ns"

    def _ev(self, n: int) -> list[Any]:
        import torch

        while len(self._events) < n:
            self._events.append(torch.cuda.Event(enable_timing=True))
        return self._events[:n]

    def one(self) -> tuple[float, float]:
        """(device time, host enqueue time) of one inference, synchronised (warm-up and sizing)."""
        e = self.engine
        if self.stream is None:
            t0 = time.perf_counter_ns()
            e.infer(self.feed)
            e.sync()
            dt = (time.perf_counter_ns() - t0) * 1e-9
            return dt, dt
        start, end = self._ev(2)
        t0 = time.perf_counter_ns()
        start.record(self.stream)
        e.infer(self.feed)
        end.record(self.stream)
        t1 = time.perf_counter_ns()
        end.synchronize()
        return start.elapsed_time(end) * 1e-3, (t1 - t0) * 1e-9

    def chunk(self, m: int, lead_in: bool, group: int = 1) -> tuple[list[float], list[float]]:
        """``m`` samples of ``group`` inferences each, all back to back: seconds per inference (device, host).

        An event sits between groups, not between inferences: recording one costs the GPU ~2 us, which
        would add ~4 % to a 50 us workload.
        """
        e, feed = self.engine, self.feed
        if self.stream is None:
            pairs = [self.one() for _ in range(m)]
            return [p[0] for p in pairs], [p[1] for p in pairs]
        ev, stream = self._ev(m + 1), self.stream
        if lead_in:
            e.infer(feed)  # keeps the GPU busy, so the first event does not wait for a launch
        host: list[float] = []
        ev[0].record(stream)
        t = time.perf_counter_ns()
        for i in range(m):
            for _ in range(group):
                e.infer(feed)
            ev[i + 1].record(stream)
            t2 = time.perf_counter_ns()
            host.append((t2 - t) * 1e-9 / group)
            t = t2
        ev[m].synchronize()
        return [ev[i].elapsed_time(ev[i + 1]) * 1e-3 / group for i in range(m)], host

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
        a, b, c, d = self._ev(4)
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


def group_size(per_iter_s: float, cfg: TimingConfig, gpu: bool) -> int:
    """Inferences per sample: enough for ``group_s`` of GPU work (1 on CPU and for longer inferences)."""
    if not gpu or per_iter_s >= cfg.group_s:
        return 1
    return int(min(1000, math.ceil(cfg.group_s / max(per_iter_s, 1e-7))))


def chunk_size(per_iter_s: float, cfg: TimingConfig, gpu: bool, group: int = 1) -> int:
    """Samples per host synchronisation: about ``chunk_s`` of GPU work, 1..256 (always 1 on CPU)."""
    if not gpu:
        return 1
    return int(min(256, max(1, math.ceil(cfg.chunk_s / max(per_iter_s * group, 1e-7)))))


def done(samples: list[float], elapsed_s: float, cfg: TimingConfig, min_n: int) -> str:
    """Why to stop now ("" to go on): the median is known well enough, or a cap is reached."""
    n = len(samples)
    if n >= cfg.max_rounds:
        return "round cap"
    if elapsed_s >= cfg.max_time_s and n >= 1:
        # A result that would be marked invalid gets more samples first, up to the extra time, under
        # the ordinary rules below.
        wide = cfg.valid_ci > 0 and latency.median_ci_rel(samples) > cfg.valid_ci
        if not wide or elapsed_s >= cfg.max_time_s + cfg.extra_time_s:
            return "time cap"
    if n < min_n or elapsed_s < cfg.min_time_s:
        return ""
    if cfg.target_ci <= 0:
        return "fixed rounds"
    return "precision" if latency.median_ci_rel(samples) <= cfg.target_ci else ""


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


def _stop_rule(cfg: TimingConfig, min_n: int, quick: bool) -> Callable[[list[float], float], str]:
    """The loop's stop test: exactly ``min_n`` samples for a quick look, else :func:`done` under ``cfg``."""
    if quick:
        return lambda samples, _elapsed: "fixed rounds" if len(samples) >= min_n else ""
    return lambda samples, elapsed: done(samples, elapsed, cfg, min_n)


def _collect_model(step: Stepper, m: Measurement, cfg: TimingConfig, per_iter: float, quick: bool) -> None:
    gpu = step.stream is not None
    m.group = group_size(per_iter, cfg, gpu)
    m.chunk = chunk_size(per_iter, cfg, gpu, m.group)
    lead_in = per_iter < 0.01  # a ~10 us launch gap matters below ~10 ms per inference
    stop = _stop_rule(cfg, cfg.min_rounds, quick)
    t0 = time.perf_counter()
    while True:
        m.stopped_by = stop(m.model_s, time.perf_counter() - t0)
        if m.stopped_by:
            return
        take = m.chunk if not quick else min(m.chunk, cfg.min_rounds - len(m.model_s))
        dev, host = step.chunk(take, lead_in, m.group)
        m.model_s += dev
        m.enqueue_s += host


def _collect_e2e(step: Stepper, m: Measurement, cfg: TimingConfig, quick: bool) -> None:
    if cfg.e2e_rounds <= 0:
        return
    # The end-to-end series is reported, not gated: twice the model loop's tolerance is enough.
    e2e_cfg = TimingConfig(
        max_time_s=cfg.max_time_s / 4, target_ci=2 * cfg.target_ci, max_rounds=cfg.max_rounds
    )
    stop = _stop_rule(e2e_cfg, cfg.e2e_rounds, quick)
    t0 = time.perf_counter()
    while not stop(m.e2e_s, time.perf_counter() - t0):
        total, h2d, comp, d2h = step.e2e()
        m.e2e_s.append(total)
        m.h2d_s.append(h2d)
        m.compute_in_e2e_s.append(comp)
        m.d2h_s.append(d2h)


def replay(benchmark: Any, seconds: list[float]) -> None:
    """Hand measured times to pytest-benchmark: one pedantic round per sample, via the virtual clock."""
    it = iter(seconds)
    benchmark.pedantic(
        lambda: VIRTUAL_CLOCK.advance(next(it)), rounds=len(seconds), iterations=1, warmup_rounds=0
    )


def measure(
    engine: Engine, feed: Feed, cfg: TimingConfig, benchmark: Any | None, quick: bool | None = None
) -> Measurement:
    """Warm up, then time ``engine`` on ``feed``; replay the model series through ``benchmark``.

    ``benchmark`` is pytest-benchmark's fixture (its timer must be :data:`VIRTUAL_CLOCK`), or None to
    time without recording (:func:`record` replays it later, e.g. from a timing worker).  ``quick``
    (default: no fixture, or ``--benchmark-disable``): exactly ``min_rounds`` (and ``e2e_rounds``)
    samples are taken, a quick look, not a measurement to gate on.
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
    m.warmup_iterations, m.warmup_seconds, per_iter = warm_up(step.one, cfg, feed.batch)
    if quick is None:
        quick = is_quick(benchmark)
    gc_was = gc.isenabled()
    gc.disable()
    try:
        _collect_model(step, m, cfg, per_iter, quick)
        shift = None if quick else latency.level_shift(m.model_s)
        if shift is not None:
            # Two machines in one series (e.g. a host's other tenant for a few seconds): take it again once.
            m.retaken = f"the first series moved between {shift[0] * 1e3:.3f} and {shift[1] * 1e3:.3f} ms"
            m.model_s, m.enqueue_s = [], []
            _collect_model(step, m, cfg, per_iter, quick)
        _collect_e2e(step, m, cfg, quick)
    finally:
        if gc_was:
            gc.enable()
        engine.sync()
    m.wall_seconds = time.perf_counter() - t_start
    record(benchmark, m, quick)
    return m


def is_quick(benchmark: Any | None) -> bool:
    """No pytest-benchmark fixture, or ``--benchmark-disable``: a quick look, not a measurement."""
    return benchmark is None or bool(getattr(benchmark, "disabled", False))


def record(benchmark: Any | None, m: Measurement, quick: bool) -> None:
    """Hand ``m``'s model series to pytest-benchmark (nothing for a quick look but the one call it needs)."""
    if benchmark is None:
        return
    if quick:
        benchmark(lambda: None)  # --benchmark-disable: run once, record nothing
    else:
        replay(benchmark, m.model_s)
