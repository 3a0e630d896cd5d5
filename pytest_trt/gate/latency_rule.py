"""The latency regression rule: what change a set of runs can see, and whether they saw one.

A benchmark's median moves between separate processes far more than inside one (on an H100: 0.1-0.5 %
CoV inside a run, 1-2 % between runs), so the unit of evidence is one run's median, never one round.
The rule works on the logarithms of per-run medians:

- ``d`` = mean(log candidate) - mean(log baseline), its standard error from the pooled run-to-run
  variance -- *moderated* by a prior from a fitted noise model (a variance estimated from 5 runs is
  itself noisy; the prior's weight is its degrees of freedom, capped so the runs at hand dominate);
- per-benchmark false-alarm rate ``alpha_b`` = Sidak's share of the suite-wide rate (1 false alarm
  per 100 unchanged suites of K benchmarks), one-sided;
- regression when ``d`` exceeds ``cut = max(t(1-alpha_b) se, log(1+threshold) - t(power) se)``: never
  below the false-alarm bound, and at most what still catches a change of exactly ``threshold`` with
  the wanted power.  ``minimum detectable change = exp((t(1-alpha_b) + t(power)) se) - 1``: when it
  exceeds the threshold, the verdict says so and how many runs per side would reach it.

Quantiles and p-values are :mod:`scipy.stats`'s Student t.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

PRIOR_DF_CAP = 10  # a prior fitted elsewhere may not outweigh ten degrees of freedom of the runs at hand


@dataclass(frozen=True)
class Noise:
    """Run-to-run spread of one benchmark class: sd of log per-run medians, and its degrees of freedom."""

    run_sd: float
    df: int
    in_run_cov: float | None = None


@dataclass
class NoiseModel:
    """Noise per batch size, fitted to repeated separate runs (``pytest-trt noise``)."""

    by_batch: dict[int, Noise]
    pooled: Noise
    device: str = "?"
    source: dict[str, Any] = field(default_factory=dict)

    def for_batch(self, batch: int | None) -> Noise:
        """The fit for the nearest batch size (in log scale); the pooled fit when unknown."""
        if batch is None or not self.by_batch:
            return self.pooled
        key = min(self.by_batch, key=lambda b: (abs(math.log(b) - math.log(max(batch, 1))), b))
        return self.by_batch[key]

    def as_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "source": self.source,
            "pooled": asdict(self.pooled),
            "by_batch": {str(b): asdict(n) for b, n in sorted(self.by_batch.items())},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NoiseModel:
        try:
            return cls(
                by_batch={int(b): Noise(**n) for b, n in (d.get("by_batch") or {}).items()},
                pooled=Noise(**d["pooled"]),
                device=str(d.get("device", "?")),
                source=dict(d.get("source") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"not a pytest-trt noise model ({exc}); write one with `pytest-trt noise`"
            ) from None

    @classmethod
    def load(cls, path: Path | str) -> NoiseModel:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read a noise model ({exc})") from None
        return cls.from_dict(data.get("model", data))


@functools.lru_cache(maxsize=1)
def bundled_gpu_model() -> NoiseModel:
    """The model fitted to repeated H100 runs shipped with the package (see ``data/gpu_noise.json``).

    Read once: ``compare`` asks for it per benchmark (and a report's timeline per benchmark and run).
    Callers must not modify it."""
    text = resources.files("pytest_trt").joinpath("data/gpu_noise.json").read_text()
    return NoiseModel.from_dict(json.loads(text)["model"])


def fit(medians: Mapping[str, Sequence[float]], batches: Mapping[str, int | None]) -> NoiseModel:
    """Pooled variance of log per-run medians, per batch size and overall (cases with >= 2 runs)."""
    ss: dict[int | None, float] = {}
    df: dict[int | None, int] = {}
    for key, xs in medians.items():
        v = np.log(np.asarray([x for x in xs if x and x > 0], dtype=float))
        if len(v) < 2:
            continue
        b = batches.get(key)
        for k in (b, None) if b is not None else (None,):
            ss[k] = ss.get(k, 0.0) + float(((v - v.mean()) ** 2).sum())
            df[k] = df.get(k, 0) + len(v) - 1
    if not df.get(None):
        raise ValueError("a noise fit needs at least one benchmark with two or more runs")
    by_batch = {int(b): Noise(math.sqrt(ss[b] / df[b]), df[b]) for b in df if b is not None and df[b] > 0}
    return NoiseModel(by_batch, Noise(math.sqrt(ss[None] / df[None]), df[None]))


def sidak(family_alpha: float, k: int) -> float:
    """Per-test rate that keeps the chance of any false alarm among ``k`` tests at ``family_alpha``."""
    return 1.0 - (1.0 - family_alpha) ** (1.0 / max(k, 1))


@dataclass(frozen=True)
class Test:
    """Outcome of the rule for one benchmark (all changes as fractions, e.g. 0.05 = 5 %)."""

    change: float  # exp(d) - 1
    se: float  # standard error of d (log scale)
    df: float
    cut: float  # the change beyond which it is called (as a fraction)
    mdc: float  # minimum detectable change at the requested power
    p_value: float  # one-sided, in the direction of the change
    direction: str  # "slower" | "faster" | "same"
    runs_needed: int | None  # runs per side that would bring mdc to the threshold (None: already there)


def _moderated(
    xb: np.ndarray, xc: np.ndarray, prior: Noise | None, prior_df_cap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d, se, df) along the last axis of log medians, vectorised over leading axes."""
    rb, rc = xb.shape[-1], xc.shape[-1]
    d = xc.mean(-1) - xb.mean(-1)
    ss = ((xb - xb.mean(-1, keepdims=True)) ** 2).sum(-1) + ((xc - xc.mean(-1, keepdims=True)) ** 2).sum(-1)
    nu = rb + rc - 2
    nu0 = min(prior.df, prior_df_cap) if prior else 0
    var0 = prior.run_sd**2 if prior else 0.0
    dof = nu0 + nu
    if dof == 0:
        return d, np.full_like(d, np.nan), np.zeros_like(d)
    s2 = (nu0 * var0 + ss) / dof
    return d, np.sqrt(s2 * (1.0 / rb + 1.0 / rc)), np.full_like(d, float(dof))


def _cut(
    se: np.ndarray, dof: np.ndarray, *, threshold: float, alpha_b: float, power: float
) -> tuple[np.ndarray, np.ndarray]:
    """(cut, t_a + t_p) in log scale: never below the false-alarm bound, at most what keeps ``power`` at
    ``threshold``.  With no variance estimate at all (dof 0) the cut is the threshold and mdc infinite."""
    known = dof > 0
    safe = np.where(known, dof, 1.0)
    t_a = stats.t.ppf(1 - alpha_b, safe)
    t_p = stats.t.ppf(power, safe)
    cut = np.where(known, np.maximum(t_a * se, math.log1p(threshold) - t_p * se), math.log1p(threshold))
    return cut, np.where(known, t_a + t_p, np.inf)


def _direction(d: np.ndarray, cut: np.ndarray) -> np.ndarray:
    return np.where(d > cut, 1, np.where(d < -cut, -1, 0))


def decide_many(
    base_log: np.ndarray,
    cand_log: np.ndarray,
    *,
    threshold: float,
    alpha_b: float,
    power: float = 0.98,
    prior: Noise | None = None,
    prior_df_cap: int = PRIOR_DF_CAP,
) -> np.ndarray:
    """+1 slower / -1 faster / 0 for each row of (…, runs) arrays of log medians (the simulation's path)."""
    d, se, dof = _moderated(np.asarray(base_log, float), np.asarray(cand_log, float), prior, prior_df_cap)
    cut, _ = _cut(se, dof, threshold=threshold, alpha_b=alpha_b, power=power)
    return _direction(d, cut)


def test_runs(
    base_s: Sequence[float],
    cand_s: Sequence[float],
    *,
    threshold: float,
    alpha_b: float,
    power: float = 0.98,
    prior: Noise | None = None,
    floor_s: float = 0.0,
    prior_df_cap: int = PRIOR_DF_CAP,
) -> Test:
    """The rule for one benchmark from per-run medians in seconds (the same cut as :func:`decide_many`,
    raised to ``floor_s`` where that is larger)."""
    xb = np.log(np.asarray(base_s, float))[None, :]
    xc = np.log(np.asarray(cand_s, float))[None, :]
    d_a, se_a, dof_a = _moderated(xb, xc, prior, prior_df_cap)
    cut_a, t_a = _cut(se_a, dof_a, threshold=threshold, alpha_b=alpha_b, power=power)
    d, se, dof, t = float(d_a[0]), float(se_a[0]), float(dof_a[0]), float(t_a[0])
    base_med = float(np.exp(xb.mean()))
    cut = max(float(cut_a[0]), math.log1p(floor_s / base_med) if base_med > 0 else 0.0)
    direction = {1: "slower", -1: "faster", 0: "same"}[int(_direction(np.array(d), np.array(cut)))]
    if dof == 0:  # one run a side and no prior: the ratio alone, and say so
        return Test(math.expm1(d), math.nan, 0, math.expm1(cut), math.inf, math.nan, direction, None)
    p = float(stats.t.sf(abs(d) / se, dof)) if se > 0 else (0.0 if d else 1.0)
    mdc = math.expm1(t * se)
    need = None
    if mdc > threshold:
        need = runs_needed(
            math.sqrt(se**2 / (1 / xb.shape[-1] + 1 / xc.shape[-1])),
            threshold=threshold,
            alpha_b=alpha_b,
            power=power,
            prior_df=min(prior.df, prior_df_cap) if prior else 0,
        )
    return Test(math.expm1(d), se, dof, math.expm1(cut), mdc, p, direction, need)


def runs_needed(
    run_sd: float,
    *,
    threshold: float,
    alpha_b: float,
    power: float = 0.98,
    prior_df: int = 0,
    limit: int = 200,
) -> int | None:
    """Fewest runs per side (same on both) whose minimum detectable change is within ``threshold``."""
    for r in range(2, limit + 1):
        dof = prior_df + 2 * r - 2
        t = float(stats.t.ppf(1 - alpha_b, dof) + stats.t.ppf(power, dof))
        if math.expm1(t * run_sd * math.sqrt(2 / r)) <= threshold:
            return r
    return None
