"""Timing one case, where its figure means what a deployment would see.

``--trt-isolate gpu`` (the default): every GPU engine is timed in a worker forked before the session
touched CUDA (:mod:`pytest_trt.measure.isolation`), one worker per engine, reused for that engine's batch
sizes; the worker rebuilds the engine from the cache and runs nothing else.  Host engines (onnxruntime
and OpenVINO on the CPU) are timed in the session's process.  ``on``: host engines in workers too.
``off``: everything in the session's process, after whatever ran there.  Every result says which in
``timing.context``.  The session's *sentinel* times its first timed case again at the end: a drift past
the run's own noise marks every result invalid, naming the drift.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pytest_trt.engines.protocol import Engine
from pytest_trt.hardware import jetson, telemetry
from pytest_trt.hardware.device import Device, release_cuda_cache
from pytest_trt.measure import timing
from pytest_trt.measure.isolation import ForkServer, Worker, WorkerError
from pytest_trt.plugin import records

if TYPE_CHECKING:
    from pytest_trt.models.datasets import Samples
    from pytest_trt.plugin.matrix import Case, Request
    from pytest_trt.plugin.session import TrtSession
    from pytest_trt.plugin.settings import Settings


@dataclass
class Timed:
    """What timing one case produced, wherever it ran."""

    measurement: timing.Measurement
    section: dict[str, Any]  # records.timing_section(...): latency, throughput, validity, memory
    async_throughput: dict[str, Any] | None
    context: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)  # seconds per step of timing it (time_engine)


def config_for(s: Settings, samples: int) -> timing.TimingConfig:
    return timing.TimingConfig(
        warmup_s=s.warmup,
        warmup_min=s.warmup_iters,
        warmup_fraction=s.warmup_fraction,
        dataset_size=samples,
        min_rounds=s.rounds,
        min_time_s=s.min_time,
        max_time_s=max(s.max_time, s.min_time),
        target_ci=s.target_ci,
        valid_ci=s.valid_ci,
        extra_time_s=s.extra_time,
        e2e_rounds=s.e2e_rounds,
        cuda_graph=s.cuda_graph,
    )


def time_engine(
    s: Settings, case: Case, eng: Engine, inputs: TimingInputs, quick: bool, on_jetson: bool
) -> Timed:
    """Warm up and time ``eng`` on ``inputs`` with telemetry; nothing is recorded anywhere yet.  The
    result's ``stages`` say where the seconds went (the timed loops themselves are ``loops``)."""
    stages: dict[str, float] = {}
    clock = _Stages(stages)
    feed = eng.make_feed(inputs.batch)
    clock.lap("feed")
    cfg = config_for(s, inputs.dataset_size)
    dev_index = s.device.index if s.device.is_cuda else None
    if s.device.is_cuda:
        # Memory "during inference" must not include what the baseline or quality pass left cached.
        gc.collect()
        torch.cuda.synchronize(s.device.torch)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(s.device.torch)
    # On Jetson, NVML is largely absent and memory is unified: tegrastats (or /proc/meminfo) is the source.
    tegra = jetson.TegraSampler().start() if on_jetson else None
    clock.lap("memory_reset")
    try:
        with telemetry.sampling(dev_index) as sampler:
            clock.lap("telemetry_start")
            m = timing.measure(eng, feed, cfg, None, quick=quick)
            clock.lap("measure")
    finally:
        if tegra is not None:
            tegra.stop()
    inferences = (len(m.model_s) + len(m.e2e_s) + m.warmup_iterations) * case.batch
    tel = sampler.summary(inferences)
    if s.device.is_cuda:
        tel["torch_peak_allocated_mb"] = torch.cuda.max_memory_allocated(s.device.torch) / 2**20
    if tegra is not None:
        tel.update(jetson.merge_into_telemetry(tegra.summary(inferences), tel))
    section = records.timing_section(m, cfg, case.batch, tel, eng.info, s.valid_ci)
    clock.lap("telemetry_stop")
    # an engine's own throughput mode (OpenVINO's async requests), for the throughput comparison
    thr = eng.async_throughput(feed, min(2.0, cfg.max_time_s))
    clock.lap("async_throughput")
    # measure's own split: "prepare" (sync, CUDA graph capture, garbage collection: before its clock
    # starts), warm-up, the timed loops
    inside = stages.pop("measure")
    stages["prepare"] = round(max(inside - m.wall_seconds, 0.0), 4)
    stages["warm_up"] = round(m.warmup_seconds, 4)
    stages["loops"] = round(m.wall_seconds - m.warmup_seconds, 4)
    return Timed(m, section, thr, stages=stages)


class _Stages:
    """Seconds since the previous lap, by name, into ``into`` (a case's timing split)."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into
        self.t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.into[name] = round(now - self.t, 4)
        self.t = now


@dataclass(frozen=True)
class TimingInputs:
    """What timing reads of the evaluation set: one batch of it (cycled to the case's batch size) and
    the set's size (for a warm-up given as a fraction of it)."""

    batch: tuple[np.ndarray, ...]
    dataset_size: int

    @staticmethod
    def of(samples: Samples, batch: int) -> TimingInputs:
        return TimingInputs(samples.cycled(batch), len(samples))


@dataclass
class Job:
    """One case for a worker, with its timing batch: the session has the evaluation set already, and a
    worker making it again took 2.5-6.8 s per case on an H200 host (decoding and resizing photographs)."""

    case: Case
    req: Request
    quick: bool
    inputs: TimingInputs


class _WorkerState:
    """What a worker keeps between its jobs (the batch sizes of one engine)."""

    session: TrtSession | None = None
    ran: list[str] = []  # noqa: RUF012 - one list per worker process, which owns this class's state


HEALTH_SECONDS = 10  # a worker that cannot finish a small parallel CPU operation in this long is stuck


def _healthy() -> bool:
    """A worker's first job: run one parallel CPU operation under an alarm.  A process that had started
    an OpenMP thread pool before it forked the server (torch on the CPU, in a conftest or an earlier
    in-process run) leaves its workers hanging in that pool; the alarm's default action ends such a
    worker, and the session then times in its own process, saying why."""
    signal.alarm(HEALTH_SECONDS)
    torch.randn(1 << 20).exp_()  # above torch's grain size: runs in the OpenMP pool
    signal.alarm(0)
    return True


def _serve(job: Job | str) -> Timed | bool:
    """Runs in a worker: build the engine from the cache, time it, say what the context ran before
    (or, first, the health check)."""
    if job == "health":
        return _healthy()
    assert isinstance(job, Job)
    sess = _WorkerState.session
    assert sess is not None
    t0 = time.perf_counter()
    eng = sess.engine(job.case, job.req)
    built_s = time.perf_counter() - t0
    timed = time_engine(sess.settings, job.case, eng, job.inputs, job.quick, sess.on_jetson)
    timed.stages = {"engine": round(built_s, 4), **timed.stages}
    timed.context = {
        "mode": "fresh",
        "ran_before": list(_WorkerState.ran),  # earlier batch sizes of this very engine, if any
        "worker_engine_seconds": round(built_s, 3),
    }
    _WorkerState.ran.append(job.case.id)
    return timed


class Isolation:
    """The session's timing workers: one fork server, one open worker (the current engine's)."""

    def __init__(self, session: TrtSession) -> None:
        self.reason: str | None = None
        self._checked = False
        self.server: ForkServer | None = None
        self._worker: tuple[tuple[Any, ...], Worker] | None = None
        if torch.cuda.is_initialized():  # a forked child could not use CUDA: say why, time as before
            self.reason = "CUDA was initialised before the timing server could start"
            return
        telemetry.release_nvml()  # a fork must not share the parent's NVML handles
        _WorkerState.session = session
        self.server = ForkServer(_serve)

    def _check(self, worker: Worker) -> bool:
        """The first worker's health check (see :func:`_healthy`); on failure isolation ends here."""
        self._checked = True
        try:
            worker.run("health")
        except WorkerError as exc:
            self.reason = (
                "a timing worker hung in a CPU thread pool (OpenMP) that this process had started before "
                f"forking its timing server ({exc}); timed in this process instead"
            )
            self._worker = None
            self.close()
            return False
        return True

    @property
    def active(self) -> bool:
        return self.server is not None

    def takes(self, device: Device) -> bool:
        """Engines on a GPU always; host engines too with ``--trt-isolate on``."""
        assert _WorkerState.session is not None
        return self.active and (device.is_cuda or _WorkerState.session.settings.isolate == "on")

    def time(
        self, case: Case, req: Request, inputs: TimingInputs, quick: bool, fresh: bool = False
    ) -> Timed | None:
        """Time ``case`` in the worker of its engine (a new one when the engine changes, or ``fresh``);
        None where workers cannot run here (``reason`` then says why, and the session times itself)."""
        assert self.server is not None
        group = case.engine_group
        if fresh or self._worker is None or self._worker[0] != group:
            self.end_worker()
            t0 = time.perf_counter()
            self._worker = (group, self.server.open())
            if not self._checked and not self._check(self._worker[1]):
                return None
            started_s = time.perf_counter() - t0
        else:
            started_s = 0.0
        held = release_cuda_cache()  # the worker gets the GPU without the session's cached blocks
        t0 = time.perf_counter()
        try:
            timed: Timed = self._worker[1].run(Job(case, req, quick, inputs))
        except WorkerError:
            self.end_worker()
            raise
        timed.context["worker_start_seconds"] = round(started_s, 4)
        timed.context["worker_seconds"] = round(time.perf_counter() - t0, 3)
        # what the worker's own steps do not account for: handing the job over and the result back
        handover = timed.context["worker_seconds"] - sum(timed.stages.values())
        timed.stages = {"worker_start": round(started_s, 4), **timed.stages, "handover": round(handover, 4)}
        timed.context["worker_pid"] = self._worker[1].pid
        if held is not None:
            timed.context["session_cuda_memory_mb"] = held
        return timed

    def end_worker(self) -> None:
        if self._worker is not None:
            worker, self._worker = self._worker[1], None
            with contextlib.suppress(OSError, EOFError, AssertionError):  # a dead worker has nothing to close
                worker.close()

    def close(self) -> None:
        self.end_worker()
        if self.server is not None:
            self.server.close()
            self.server = None


SHARED_HISTORY = 20  # how many earlier cases a shared-context result lists by name


def time_case(
    sess: TrtSession,
    case: Case,
    req: Request,
    device: Device,
    engine: Callable[[], Engine],
    quick: bool,
    fresh: bool = False,
) -> Timed:
    """Time ``case``: in its engine's worker where isolation takes an engine on ``device`` (``fresh``: a
    new worker even for the same engine), else in this process on ``engine()``, built only then."""
    iso = sess.isolation
    inputs = TimingInputs.of(sess.fp32_outputs(case).samples, case.batch)
    if iso is not None and iso.takes(device):
        timed = iso.time(case, req, inputs, quick, fresh=fresh)
        if timed is not None:
            return timed
    eng = engine()
    timed = time_engine(sess.settings, case, eng, inputs, quick, sess.on_jetson)
    timed.context = shared_context(sess, device)
    return timed


def shared_context(sess: TrtSession, device: Device) -> dict[str, Any]:
    """``timing.context`` of a case timed in the session's own process."""
    if not device.is_cuda and sess.settings.isolate == "gpu":
        why = "host engine: timed in the session's process (--trt-isolate gpu)"
    elif sess.isolation is None:
        why = "--trt-isolate off"
    else:
        why = sess.isolation.reason or "no timing server"
    before = sess.timed_ids
    return {
        "mode": "shared",
        "reason": why,
        # besides these, the process ran the quality passes (fp32 outputs, references) of every case so far
        "ran_before": before[-SHARED_HISTORY:],
        "ran_before_count": len(before),
    }


@dataclass
class Sentinel:
    """The session's first timed case, timed again at the end (a drift means the run is not trustworthy)."""

    case: Case
    req: Request
    device: Device  # where its engine ran: a host engine's drift is reported, not applied
    first: timing.Measurement
    drift: dict[str, Any] | None = None

    def check(self, again: timing.Measurement, valid_ci: float) -> dict[str, Any]:
        a, b = self.first.latency_ms()["model"], again.latency_ms()["model"]
        rel = abs(b["median"] / a["median"] - 1.0)
        noise = (a.get("median_ci95_rel") or 0.0) + (b.get("median_ci95_rel") or 0.0)
        allowed = max(noise, valid_ci)
        self.drift = {
            "case": self.case.id,
            "first_median_ms": a["median"],
            "last_median_ms": b["median"],
            "drift": round(rel, 5),
            "allowed": round(allowed, 5),
            "ok": rel <= allowed,
            # A host engine's figure moves between processes on its own (tinycnn on onnxruntime, 2 cores:
            # 0.09 or 0.18 ms from one fresh process to the next), more than any within-run noise says:
            # its sentinel is reported, and marks the run only where the case ran on a GPU.
            "applies": self.device.is_cuda,
        }
        return self.drift


def marks_run(drift: dict[str, Any]) -> bool:
    """Does this sentinel result make every result of the session invalid?"""
    return not drift["ok"] and bool(drift.get("applies", True))


def mark_invalid(extra_info: dict[str, Any], drift: dict[str, Any]) -> None:
    """A session whose sentinel drifted: every timed result is invalid, with the reason."""
    validity = extra_info.get("validity")
    if not isinstance(validity, dict):
        return
    reason = (
        f"sentinel: {drift['case']} took {drift['last_median_ms']:.4g} ms at the end of the session, "
        f"{drift['first_median_ms']:.4g} ms first ({drift['drift']:.1%} > {drift['allowed']:.1%} noise)"
    )
    if reason not in validity.setdefault("reasons", []):
        validity["reasons"].append(reason)
    validity["valid"] = False
    extra_info["valid"] = False


def check_sentinel(sess: TrtSession) -> dict[str, Any] | None:
    """Time the session's first timed case again, as it was timed then; mark the run if it drifted."""
    sentinel = sess.sentinel
    if sentinel is None or len(sess.timed_ids) < 2:  # nothing ran after it: nothing could have moved it
        return None
    case, req = sentinel.case, sentinel.req
    try:
        again = time_case(
            sess, case, req, sentinel.device, lambda: sess.engine(case, req), quick=False, fresh=True
        )
    except Exception as exc:  # a sentinel that cannot run says so; it does not fail the session
        sentinel.drift = {"case": case.id, "ok": True, "error": f"{type(exc).__name__}: {exc}"}
        return sentinel.drift
    drift = sentinel.check(again.measurement, sess.settings.valid_ci)
    if marks_run(drift):
        for record in sess.records.values():
            mark_invalid(record.get("extra_info", {}), drift)
    return drift
