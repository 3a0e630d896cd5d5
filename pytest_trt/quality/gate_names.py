"""Which gates can be asked for: every metric a result can hold, the closeness fractions computed, and
the precisions (gate classes) a gate may name.  A gate outside these would silently never apply, so
``--trt-gate`` and ``@pytest.mark.trt_quality`` refuse it, naming what would be valid.

The metric names are read off the metrics themselves (computed once on a small made-up output for every
task), so a metric added to :mod:`pytest_trt.quality.metrics` is gateable without a list to keep.
"""

from __future__ import annotations

import difflib
import functools
from typing import Any

import numpy as np

from pytest_trt.engines.recipes import PRECISIONS
from pytest_trt.quality import metrics
from pytest_trt.quality.pruning_loss import pruning_loss

GATE_CLASSES = (*PRECISIONS, "tf32")  # tf32: fp32 computed with TF32 math on a GPU


class UnknownGate(ValueError):
    """A gate that names a metric, fraction or precision no result has; the message lists the valid ones."""


def _leaves(d: Any, into: set[str]) -> None:
    for k, v in d.items():
        if isinstance(v, dict):
            _leaves(v, into)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            try:
                float(k)  # closeness curve keys ("0.1"): gated as closeness@F
            except ValueError:
                into.add(str(k))


@functools.cache
def known_metrics() -> frozenset[str]:
    """Every numeric metric name a result's quality can hold (its gates name one of these)."""
    rng = np.random.default_rng(0)
    names: set[str] = {"nan_or_inf", *(f"closeness@{f:g}" for f in metrics.CLOSENESS_FRACTIONS)}
    shapes = {"classification": (6, 10), "segmentation": (6, 3, 8, 8), "regression": (6, 1, 8, 8)}
    shapes |= {"embedding": (6, 16), "generic": (6, 16)}
    for task, shape in shapes.items():
        base = rng.normal(size=shape)
        out = base + 0.01 * rng.normal(size=shape)
        labels: Any = {
            "classification": np.arange(6) % 10,
            "segmentation": rng.integers(0, 3, size=(6, 8, 8)),
            "regression": base + 0.1,
        }.get(task)
        _leaves(metrics.quality(task, base, out, labels), names)
        _leaves(metrics.against_reference(base, out, base, floor=1e-3, task=task, trained=True), names)
        _leaves(
            metrics.against_reference(base, out, base, floor=1e-3, task=task, trained=True, exact=True), names
        )
        _leaves(pruning_loss([base], [out], task, labels if task == "classification" else None), names)
    from pytest_trt.quality.detection import METRICS as DETECTION_METRICS

    names |= set(DETECTION_METRICS)  # computed from decoded detections, not from a made-up tensor
    return frozenset(n for n in names if not n.startswith("baseline_"))


def check(precision: str, metric: str) -> None:
    """Raise :class:`UnknownGate` for a gate that could never apply."""
    if precision != "*" and precision not in GATE_CLASSES:
        raise UnknownGate(
            f"no results have precision {precision!r}: a gate names one of {', '.join(GATE_CLASSES)} or '*'"
        )
    if metric.startswith("closeness@"):
        frac = metric.split("@", 1)[1]
        fractions = [f"{f:g}" for f in metrics.CLOSENESS_FRACTIONS]
        try:
            ok = f"{float(frac):g}" in fractions
        except ValueError:
            ok = False
        if not ok:
            raise UnknownGate(
                f"closeness is computed at f = {', '.join(fractions)}; {metric!r} is not one of them"
            )
        return
    known = known_metrics()
    if metric not in known:
        near = difflib.get_close_matches(metric, sorted(known), n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise UnknownGate(
            f"no result has a metric {metric!r}{hint}; gateable metrics: {', '.join(sorted(known))}"
        )
