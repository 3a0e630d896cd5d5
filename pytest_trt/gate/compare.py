"""Regression gate of pytest-benchmark JSON runs: the verdict per benchmark, side by side (reading the
runs is :mod:`pytest_trt.gate.results`).

Latency is judged on per-run medians with the rule in :mod:`pytest_trt.gate.latency_rule` (moderated
t-test on log medians, Sidak share of a suite-wide false-alarm rate, power at the threshold, the
minimum detectable change said when the runs cannot reach the threshold).  Quality is gated
separately (closeness, agreement, accuracy may not drop by more than a tolerance).  Differences of
GPU, driver, CUDA, TensorRT or recipe are reported and, unless ``--across-env``, make a latency change
"incomparable" rather than a regression.  Rendering is in :mod:`pytest_trt.gate.render`; runs side by
side (``--by``) are :mod:`pytest_trt.gate.side_by_side`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pytest_trt.gate import latency_rule
from pytest_trt.gate.latency_rule import NoiseModel
from pytest_trt.gate.results import (
    ENV_KEYS,
    QUALITY_METRICS,
    RunResult,
    load_side,
    quality_numbers,
)
from pytest_trt.gate.runs import median as _median

VERDICTS = (
    "regressed", "failed-now", "improved", "unchanged", "new", "missing", "invalid", "incomparable", "unjudged",
)  # fmt: skip
FAILING = ("regressed", "failed-now")
#: verdicts that judged something: a gate where none of its benchmarks got one judged nothing
JUDGED = ("regressed", "failed-now", "improved", "unchanged")
FAILED_STATUSES = ("build_failed", "oom", "run_failed", "quality_failed")


@dataclass(frozen=True, eq=False)
class Rule:
    threshold: float = 0.05  # the change that must be caught
    floor_s: float = 2e-6  # changes smaller than this (absolute) are never called
    alpha: float = 0.01  # suite-wide false-alarm rate: at most 1 in 100 unchanged suites
    power: float = 0.98  # chance of catching a change of exactly ``threshold``
    noise: NoiseModel | None = None  # prior for the run-to-run variance; None: bundled model on GPUs
    use_bundled_noise: bool = True
    closeness_tol_pp: float = 1.0  # percentage points
    ratio_tol: float = 0.01  # agreement / accuracy, absolute
    across_env: bool = False
    metric: str = "median"  # median | mean | p99 | min
    include_invalid: bool = False  # judge results whose runs are all marked invalid (unstable, few samples)


@dataclass
class Comparison:
    key: str
    verdict: str
    reason: str
    base_runs: int = 0
    cand_runs: int = 0
    base_median_ms: float | None = None
    cand_median_ms: float | None = None
    ratio: float | None = None
    p_value: float | None = None
    cut: float | None = None  # change (fraction) beyond which this benchmark is called
    mdc: float | None = None  # minimum detectable change (fraction) with these runs
    runs_needed: int | None = None  # runs per side that would bring mdc within the threshold
    base_p99_ms: float | None = None
    cand_p99_ms: float | None = None
    base_throughput: float | None = None
    cand_throughput: float | None = None
    quality_deltas: dict[str, float] = field(default_factory=dict)
    env_diff: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the rule -----------------------------------------------------------------------------------


def _prior(rule: Rule, runs: Sequence[RunResult]) -> latency_rule.Noise | None:
    """The noise prior for a benchmark: the rule's model, else the bundled fit on the GPU it was made on."""
    model = rule.noise
    if model is None and rule.use_bundled_noise and runs and runs[0].env.get("gpu"):
        bundled = latency_rule.bundled_gpu_model()
        # Noise fitted on one GPU model says little about another: there, the runs speak for themselves.
        model = bundled if runs[0].env.get("gpu") == bundled.device else None
    if model is None:
        return None
    batch = runs[0].extra.get("batch") if runs else None
    return model.for_batch(int(batch) if isinstance(batch, (int, float)) else None)


def compare_benchmark(
    key: str, base: Sequence[RunResult], cand: Sequence[RunResult], rule: Rule, k: int = 1
) -> Comparison:
    """The verdict for one benchmark; ``k`` is how many benchmarks are judged together (false alarms)."""
    if not base:
        return Comparison(key, "new", "only in the candidate", cand_runs=len(cand))
    if not cand:
        return Comparison(key, "missing", "only in the baseline", base_runs=len(base))
    ok_base = [r for r in base if r.status not in FAILED_STATUSES]
    failed_cand = [r for r in cand if r.status in FAILED_STATUSES and r.status != "quality_failed"]
    v = Comparison(key, "unchanged", "", len(base), len(cand))
    if failed_cand and ok_base:
        v.verdict, v.reason = "failed-now", f"candidate status {failed_cand[0].status} (baseline ran)"
        return v
    qdrops = _quality_drops(base, cand, rule, v)
    env_diff = {
        k: (base[0].env.get(k), cand[0].env.get(k))
        for k in ENV_KEYS
        if base[0].env.get(k) != cand[0].env.get(k)
    }
    if base[0].recipe != cand[0].recipe:
        env_diff["recipe"] = (base[0].recipe, cand[0].recipe)
    v.env_diff = env_diff
    if qdrops:
        v.verdict, v.reason = "regressed", "quality dropped: " + "; ".join(qdrops)
        return v
    bm = [s for r in base if (s := r.stat(rule.metric)) is not None and s > 0]
    cm = [s for r in cand if (s := r.stat(rule.metric)) is not None and s > 0]
    if not bm or not cm:
        side = "either side" if not bm and not cm else ("the baseline" if not bm else "the candidate")
        if v.quality_deltas:  # quality was judged (and held); speed could not be
            v.reason = f"quality held; no timing in {side} (e.g. --benchmark-disable)"
        else:
            v.verdict, v.reason = "unjudged", f"no timing and no quality figures in {side}"
        return v
    _fill_figures(v, base, cand, bm, cm)
    all_invalid = all(r.valid is False for r in cand)
    if all_invalid and not rule.include_invalid:
        v.verdict, v.reason = "invalid", "every candidate run is marked invalid (see its validity reasons)"
        return v
    t = latency_rule.test_runs(
        bm,
        cm,
        threshold=rule.threshold,
        alpha_b=latency_rule.sidak(rule.alpha, k),
        power=rule.power,
        prior=_prior(rule, cand),
        floor_s=rule.floor_s,
    )
    v.p_value = None if math.isnan(t.p_value) else t.p_value
    v.cut, v.mdc, v.runs_needed = t.cut, t.mdc, t.runs_needed
    blind = ""
    if t.mdc > rule.threshold:
        more = f"; {t.runs_needed} runs per side would" if t.runs_needed else ""
        shown = "unknown (one run a side, no noise model)" if math.isinf(t.mdc) else f"{t.mdc * 100:.1f}%"
        blind = f"minimum detectable change {shown} > {rule.threshold * 100:g}% with {len(bm)}+{len(cm)} runs{more}"
    if t.direction == "same":
        v.reason = f"{t.change * 100:+.1f}% (called beyond {t.cut * 100:.1f}%)" + (
            f"; {blind}" if blind else ""
        )
        return v
    if env_diff and not rule.across_env:
        v.verdict = "incomparable"
        v.reason = (
            f"{t.direction} by {abs(t.change) * 100:.1f}% but the environment differs "
            f"({', '.join(env_diff)}); pass --across-env to judge"
        )
        return v
    v.verdict = "regressed" if t.direction == "slower" else "improved"
    v.reason = (
        f"{rule.metric} {v.base_median_ms:.4g} -> {v.cand_median_ms:.4g} ms ({t.change * 100:+.1f}%, "
        f"called beyond {t.cut * 100:.1f}%"
        + (
            f", p={t.p_value:.2g} over {len(bm)}+{len(cm)} runs)"
            if v.p_value is not None
            else ", ratio only)"
        )
    )
    if all_invalid:
        v.reason += " (the candidate's timing is marked invalid: see its validity reasons)"
    return v


def _quality_drops(
    base: Sequence[RunResult], cand: Sequence[RunResult], rule: Rule, v: Comparison
) -> list[str]:
    """Quality is gated apart from speed: the worst candidate run against the baseline's median."""
    drops = []
    for name in QUALITY_METRICS:
        bq = [r.quality[name] for r in base if name in r.quality]
        cq = [r.quality[name] for r in cand if name in r.quality]
        if not bq or not cq:
            continue
        delta = min(cq) - _median(bq)
        v.quality_deltas[name] = delta
        tol = rule.closeness_tol_pp if "closeness" in name else rule.ratio_tol
        if delta < -tol:
            drops.append(f"{name} {_median(bq):.4g} -> {min(cq):.4g} (tolerance {tol:g})")
    return drops


def _fill_figures(
    v: Comparison, base: Sequence[RunResult], cand: Sequence[RunResult], bm: list[float], cm: list[float]
) -> None:
    b_med, c_med = _median(bm), _median(cm)
    v.base_median_ms, v.cand_median_ms = b_med * 1e3, c_med * 1e3
    v.ratio = c_med / b_med if b_med > 0 else math.inf
    bp = [r.p99_s for r in base if r.p99_s is not None]
    cp = [r.p99_s for r in cand if r.p99_s is not None]
    v.base_p99_ms = _median(bp) * 1e3 if bp else None
    v.cand_p99_ms = _median(cp) * 1e3 if cp else None
    bt = [r.throughput for r in base if r.throughput]
    ct = [r.throughput for r in cand if r.throughput]
    v.base_throughput = _median(bt) if bt else None
    v.cand_throughput = _median(ct) if ct else None


def compare_sides(
    base: Mapping[str, list[RunResult]], cand: Mapping[str, list[RunResult]], rule: Rule
) -> list[Comparison]:
    keys = sorted(set(base) | set(cand))
    timed = sum(
        1
        for k in keys
        if any(r.stat(rule.metric) for r in base.get(k, []))
        and any(r.stat(rule.metric) for r in cand.get(k, []))
    )
    return [compare_benchmark(k, base.get(k, []), cand.get(k, []), rule, k=timed) for k in keys]


def gate_session(
    baseline: Path, records: Sequence[Mapping[str, Any]], rule: Rule | None = None
) -> list[Comparison]:
    """The in-session gate (``--trt-baseline``): this run's records against a stored baseline file."""
    # The user asked to gate this very run: judge it even when its own validity checks complain.
    rule = rule or Rule(include_invalid=True)
    base = load_side([baseline])
    cand: dict[str, list[RunResult]] = {}
    for rec in records:
        ex = rec.get("extra_info") or {}
        if rec.get("status") == "skipped":
            continue
        lat = (ex.get("latency_ms") or {}).get("model") or {}

        def s(k: str, lat: Mapping[str, Any] = lat) -> float | None:
            return lat[k] / 1e3 if lat.get(k) is not None else None

        cand[rec["nodeid"]] = [
            RunResult(
                rec["nodeid"],
                "this session",
                rec.get("status", "ok"),
                s("median"),
                s("p99"),
                s("mean"),
                s("min"),
                ex.get("throughput_samples_per_s"),
                ex.get("valid"),
                quality_numbers(ex),
                (ex.get("recipe") or {}).get("name"),
                next(iter(base.values()))[0].env if base else {},
                ex,
            )
        ]
    return [v for v in compare_sides(base, cand, rule) if v.verdict != "missing"]


def env_notes(base: Mapping[str, list[RunResult]], cand: Mapping[str, list[RunResult]]) -> list[str]:
    be = next((rs[0].env for rs in base.values() if rs), {})
    ce = next((rs[0].env for rs in cand.values() if rs), {})
    return [f"{k}: {be.get(k)} -> {ce.get(k)}" for k in ENV_KEYS if be.get(k) != ce.get(k)]


__all__ = [
    "FAILING",
    "Comparison",
    "Rule",
    "compare_benchmark",
    "compare_sides",
    "gate_session",
]
