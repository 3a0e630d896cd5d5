"""Simulated suites under a fitted noise model: how often the gate catches a change, how often it cries wolf.

Each benchmark of a suite takes the noise of one batch size of the model (cycled), each run's log
median is the benchmark's true value plus run-to-run noise drawn from that fit -- normal, or Student t
with a few degrees of freedom for heavier tails than the fit saw.  The rule is
:func:`pytest_trt.gate.latency_rule.decide_many`, the same code ``compare`` calls, vectorised over suites.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pytest_trt.gate import latency_rule
from pytest_trt.gate.latency_rule import NoiseModel


@dataclass(frozen=True)
class Outcome:
    suites: int
    benchmarks: int
    suite_alarm_rate: float  # share of suites with at least one benchmark called slower
    bench_flag_rate: float  # share of benchmarks called slower


def simulate(
    model: NoiseModel,
    *,
    base_runs: int,
    cand_runs: int,
    slowdown: float = 0.0,
    n_suites: int = 1000,
    n_bench: int = 50,
    threshold: float = 0.05,
    family_alpha: float = 0.01,
    power: float = 0.98,
    tails_df: float | None = None,
    seed: int = 0,
) -> Outcome:
    """Suites of ``n_bench`` benchmarks, every candidate slower by ``slowdown`` (0: nothing changed)."""
    rng = np.random.default_rng(seed)
    batches: list[int | None] = list(sorted(model.by_batch)) or [None]
    alpha_b = latency_rule.sidak(family_alpha, n_bench)
    flagged = np.zeros((n_suites, n_bench), dtype=bool)
    for j in range(n_bench):
        noise = model.for_batch(batches[j % len(batches)])

        def draw(runs: int, noise: latency_rule.Noise = noise) -> np.ndarray:
            if tails_df:  # unit-variance Student t: same spread, heavier tails
                z = rng.standard_t(tails_df, (n_suites, runs)) * math.sqrt((tails_df - 2) / tails_df)
            else:
                z = rng.standard_normal((n_suites, runs))
            return noise.run_sd * z

        base = draw(base_runs)
        cand = draw(cand_runs) + math.log1p(slowdown)
        calls = latency_rule.decide_many(
            base, cand, threshold=threshold, alpha_b=alpha_b, power=power, prior=noise
        )
        flagged[:, j] = calls > 0
    return Outcome(n_suites, n_bench, float(flagged.any(axis=1).mean()), float(flagged.mean()))
