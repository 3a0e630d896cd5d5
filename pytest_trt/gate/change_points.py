"""Which stored run started a change: E-divisive means change-point detection over each benchmark's
per-run medians, by Apache Otava (the method of Fleming et al., "Hunter", ICPE 2023).

Otava finds where a series' distribution shifts; a shift is reported only when it is also as large as
the compare rule's threshold (5 % by default), so the run-to-run noise of an unchanged history (whose
best split, chosen after looking, always has a small p-value) is not called a change.  Otava is an
optional dependency installed without its own (its pins would replace numpy): ``make venv`` does
``pip install --no-deps apache-otava``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pytest_trt.gate.history import Point


class ChangePointsUnavailable(RuntimeError):
    """Apache Otava is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Change:
    run: int  # the first run after the change (its index among the stored runs)
    label: str
    before_ms: float  # mean median of the runs before it
    after_ms: float
    p_value: float

    @property
    def change(self) -> float:
        return self.after_ms / self.before_ms - 1 if self.before_ms > 0 else float("inf")

    def line(self, key: str) -> str:
        word = "slower" if self.change > 0 else "faster"
        return (
            f"- run {self.run} ({self.label}): `{key}` {word} by {abs(self.change) * 100:.1f}% "
            f"({self.before_ms:.4g} -> {self.after_ms:.4g} ms, p={self.p_value:.2g}): the first run of this change"
        )


def find(points: Sequence[Point], threshold: float = 0.05, max_pvalue: float = 0.001) -> list[Change]:
    """The changes in one benchmark's history (oldest run first): where Otava splits the series, kept
    when the means on both sides differ by at least ``threshold``."""
    try:
        from otava.analysis import compute_change_points
    except ImportError as exc:
        raise ChangePointsUnavailable(
            "change points need Apache Otava: pip install --no-deps apache-otava (make venv does)"
        ) from exc
    if len(points) < 4:
        return []
    series = np.log([p.median_ms for p in points])  # a change is a ratio: equal on both sides of 1
    found, _ = compute_change_points(list(series), window_len=max(30, len(series)), max_pvalue=max_pvalue)
    cuts = sorted(int(cp.index) for cp in found)
    p_values = {int(cp.index): float(cp.stats.pvalue) for cp in found}
    out = []
    for k, i in enumerate(cuts):  # each split against the segments on either side of it
        lo, hi = (cuts[k - 1] if k else 0), (cuts[k + 1] if k + 1 < len(cuts) else len(series))
        before, after = float(np.exp(series[lo:i].mean())), float(np.exp(series[i:hi].mean()))
        if abs(after / before - 1) >= threshold:
            out.append(Change(points[i].run, points[i].label, before, after, p_values[i]))
    return out
