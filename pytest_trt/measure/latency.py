"""Statistics of one latency series: summary, the median's confidence interval, validity, throughput.

Percentiles come from numpy (linear interpolation, numpy's default).  A percentile is reported only
when the series is long enough for it (p99 needs 100 samples): a missing p99 is honest, a p99 that is
really the maximum of 30 samples is not.  The median's 95 % confidence interval is the distribution-free
one from order statistics (normal approximation to the binomial), which is what the adaptive stop rule
in :mod:`pytest_trt.measure.timing` and the validity rule below both use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

PERCENTILES = (50, 90, 95, 99)
COV_NOTE = 0.025  # trtexec's "GPU compute time is unstable" threshold: a note, the median may still be exact
CI_Z = 1.959964  # two-sided 95 %
VALID_CI = 0.01  # a median whose 95 % CI is wider than +-1 % is not fit for a 5 % regression gate
ENQUEUE_BOUND = 0.8  # trtexec: median enqueue > 0.8 x median compute
MIN_SAMPLES_FOR = {50: 1, 90: 20, 95: 40, 99: 100}  # fewer samples than this make a percentile unreliable


SHIFT_PARTS = 4  # the series is cut into this many consecutive parts to see whether its level moved
SHIFT_MIN_SAMPLES = 40  # fewer samples than this: parts too small to tell a shift from noise
SHIFT_LIMIT = 0.10  # parts whose medians differ by more than this measured two different machines


def level_shift(values: Sequence[float]) -> tuple[float, float] | None:
    """(lowest, highest) median of the series' consecutive parts when they differ by more than
    :data:`SHIFT_LIMIT`, else None.  On a shared 2-core VM the host slowed both CPUs 1.65x for ~11 s
    while the guest saw them 100 % busy and no steal: the series then holds two levels, and its
    median belongs to neither machine (docs/measurements.md)."""
    n = len(values)
    if n < SHIFT_MIN_SAMPLES:
        return None
    parts = np.array_split(np.asarray(values, dtype=float), SHIFT_PARTS)
    meds = [float(np.median(p)) for p in parts]
    lo, hi = min(meds), max(meds)
    return (lo, hi) if lo > 0 and hi / lo - 1 > SHIFT_LIMIT else None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default definition)."""
    if len(sorted_values) == 0:
        return math.nan
    return float(np.percentile(np.asarray(sorted_values, dtype=float), q))


def median_ci(values: Sequence[float] | np.ndarray, z: float = CI_Z) -> tuple[float, float]:
    """Distribution-free ~95 % confidence interval of the median: two order statistics around it."""
    xs = np.sort(np.asarray(values, dtype=float))
    n = len(xs)
    if n == 0:
        return math.nan, math.nan
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half) - 1)
    hi = min(n - 1, math.ceil(n / 2 + half))
    return float(xs[lo]), float(xs[hi])


def median_ci_rel(values: Sequence[float] | np.ndarray) -> float:
    """Half-width of the median's 95 % CI relative to the median (0.005 = +-0.5 %); inf if unknown."""
    if len(values) < 3:
        return math.inf
    lo, hi = median_ci(values)
    med = float(np.median(np.asarray(values, dtype=float)))
    return (hi - lo) / 2 / med if med > 0 else math.inf


def summarize(seconds: Sequence[float]) -> dict[str, Any]:
    """Latency statistics in milliseconds: mean, median (+ 95 % CI), supported percentiles, CoV, n."""
    xs = np.asarray(seconds, dtype=float) * 1e3
    n = len(xs)
    if n == 0:
        return {"n": 0}
    mean = float(xs.mean())
    sd = float(xs.std(ddof=1)) if n > 1 else 0.0
    lo, hi = median_ci(xs)
    med = float(np.median(xs))
    out: dict[str, Any] = {
        "n": n,
        "mean": mean,
        "median": med,
        "median_ci95": [lo, hi],
        "median_ci95_rel": (hi - lo) / 2 / med if n >= 3 and med > 0 else None,
        "min": float(xs.min()),
        "max": float(xs.max()),
        "stddev": sd,
        "cov": sd / mean if mean > 0 else 0.0,
    }
    for q in (90, 95, 99):
        out[f"p{q}"] = float(np.percentile(xs, q)) if n >= MIN_SAMPLES_FOR[q] else None
    return out


def throughput(latency: dict[str, Any], batch: int) -> dict[str, float]:
    """Samples/s (qps x batch) from a latency summary, and the tail ratio p99/p50."""
    med = latency.get("median") or math.nan
    mean = latency.get("mean") or math.nan
    p99 = latency.get("p99")
    ok = med > 0
    return {
        "samples_per_s_median": batch * 1e3 / med if ok else math.nan,
        "samples_per_s_mean": batch * 1e3 / mean if mean > 0 else math.nan,
        "qps_median": 1e3 / med if ok else math.nan,
        "p99_over_p50": p99 / med if ok and p99 is not None else math.nan,
    }


STEAL_NOTE_PCT = 1.0  # CPU time taken by the hypervisor worth a note: it stalls every engine thread


def validity(
    model_s: Sequence[float],
    *,
    clock: str,
    enqueue_s: Sequence[float] = (),
    cuda_graph: bool = False,
    h2d_s: Sequence[float] = (),
    d2h_s: Sequence[float] = (),
    compute_in_e2e_s: Sequence[float] = (),
    clocks_changed: bool | None = None,
    throttle_reasons: Sequence[str] = (),
    io: str = "device",
    valid_ci: float = VALID_CI,
    cpu_steal_pct: float | None = None,
) -> tuple[bool, list[str], list[str]]:
    """(valid, reasons, notes): is the median pinned down well enough to gate on?

    Reasons make a result invalid: a median whose 95 % CI is wider than ``valid_ci``, clocks that moved,
    throttling.  Notes describe the run without invalidating it: a wide spread (trtexec's CoV > 2.5 %
    "unstable"), percentiles left out for want of samples, an enqueue- or transfer-bound workload.
    """
    reasons: list[str] = []
    notes: list[str] = []
    lat = summarize(model_s)
    n = int(lat.get("n", 0))
    if n == 0:
        return False, ["no samples"], notes
    ci = lat.get("median_ci95_rel")
    if ci is None or ci > valid_ci:
        shown = "unknown" if ci is None or not math.isfinite(ci) else f"+-{ci * 100:.2f}%"
        reasons.append(
            f"median not pinned down: 95% CI {shown} > +-{valid_ci * 100:g}% after {n} samples "
            "(raise --trt-extra-time, or quieten the machine)"
        )
    shift = level_shift(model_s)
    if shift is not None:
        reasons.append(
            f"speed changed during timing: the series' {SHIFT_PARTS} parts have medians "
            f"{shift[0] * 1e3:.3f}-{shift[1] * 1e3:.3f} ms (something else ran on the machine, or its host slowed it)"
        )
    if cpu_steal_pct is not None and cpu_steal_pct >= STEAL_NOTE_PCT:
        notes.append(f"the hypervisor took {cpu_steal_pct:.1f}% of the CPUs' time while timing (steal)")
    if lat["cov"] > COV_NOTE:
        notes.append(f"wide spread: coefficient of variation {lat['cov'] * 100:.1f}% > {COV_NOTE * 100:.1f}%")
    missing = [f"p{q}" for q in (90, 95, 99) if lat.get(f"p{q}") is None]
    if missing:
        notes.append(f"{', '.join(missing)} not reported: {n} samples (p99 needs {MIN_SAMPLES_FOR[99]})")
    if clocks_changed:
        reasons.append("GPU clocks changed during the run (lock clocks for stable numbers)")
    if throttle_reasons:
        reasons.append("throttled: " + ", ".join(throttle_reasons))
    if clock == "cuda_event" and enqueue_s:
        enq = float(np.median(enqueue_s)) * 1e3
        if not cuda_graph and enq > ENQUEUE_BOUND * lat["median"]:
            notes.append(
                f"enqueue-bound: median enqueue {enq:.3f} ms > {ENQUEUE_BOUND} x compute "
                f"{lat['median']:.3f} ms (try --trt-cuda-graph on)"
            )
    if compute_in_e2e_s and io == "device":
        comp = float(np.median(compute_in_e2e_s))
        for part, xs in (("H2D", h2d_s), ("D2H", d2h_s)):
            if len(xs) and float(np.median(xs)) >= comp:
                notes.append(f"transfer-bound: median {part} {float(np.median(xs)) * 1e3:.3f} ms >= compute")
    return not reasons, reasons, notes
