"""The metrics of :mod:`pytest_trt.quality.metrics` for large outputs, computed with torch on a CUDA device.

Same definitions, same keys, float64 throughout; :mod:`~pytest_trt.quality.metrics` stays the
definition and the tests hold the two equal.  Why: a segmenter's logits are tens of millions of values
per case (16 x 21 x 320 x 320 = 34 M), and the percentiles, sorts and per-element comparisons of the
closeness and error metrics took 8-20 s per case in numpy on the host, most of a GPU case's wall time.
Small outputs (a classifier's logits) stay on the host: copying them would cost more than it saves.
A device that runs out of memory falls back to the host (the result's ``computed_on`` says where).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from pytest_trt.quality import metrics

LARGE = 1 << 20  # values per output from which the device is faster than the host, copies included


def threshold() -> int:
    """Values per output from which metrics move to the device: ``LARGE``, or the environment's
    ``PYTEST_TRT_DEVICE_METRICS_MIN`` (0: every output, so a GPU machine runs the verdict tests' small
    outputs through this module)."""
    raw = os.environ.get("PYTEST_TRT_DEVICE_METRICS_MIN", "").strip()
    return int(raw) if raw.isdigit() else LARGE


def wanted(device: str | None, base: np.ndarray) -> bool:
    """Whether ``base``'s metrics are worth computing on ``device``."""
    on_cuda = device is not None and device.startswith("cuda")
    return on_cuda and base.size >= threshold() and torch.cuda.is_available()


def _t(a: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=torch.float64)


def percentile_sorted(s: torch.Tensor, q: float) -> float:
    """numpy's default (linear) percentile of an ascending 1-D tensor, with numpy's interpolation."""
    n = s.numel()
    pos = q / 100.0 * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    a, b, t = float(s[lo]), float(s[hi]), pos - lo
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


def _finite_abs_sorted(b: torch.Tensor) -> torch.Tensor:
    a = b.abs().ravel()
    return torch.sort(a[torch.isfinite(a)]).values


def closeness_scale(sorted_abs: torch.Tensor, kind: str = "values") -> tuple[float, str]:
    """:func:`metrics.closeness_scale` from the baseline's finite magnitudes, sorted."""
    if not sorted_abs.numel():
        return 0.0, "degenerate: no finite value"
    if kind == "probability":
        return 1.0, "probability range"
    peak = float(sorted_abs[-1])
    if peak == 0.0:
        return 0.0, "degenerate: all zero"
    p90 = percentile_sorted(sorted_abs, 90)
    if p90 >= metrics.NEGLIGIBLE * peak:
        return p90, "p90_abs"
    cut = torch.tensor(metrics.NEGLIGIBLE * peak, dtype=sorted_abs.dtype, device=sorted_abs.device)
    start = int(torch.searchsorted(sorted_abs, cut))
    return percentile_sorted(sorted_abs[start:], 90), "p90_abs_significant"


def _stats(x: torch.Tensor) -> dict[str, float]:
    if x.numel() == 0 or bool(torch.isnan(x).any()):  # numpy's max/mean/median of a NaN are NaN
        return {"max": math.nan, "mean": math.nan, "median": math.nan, "p99": math.nan}
    s = torch.sort(x).values
    return {
        "max": float(s[-1]),
        "mean": float(x.mean()),
        "median": percentile_sorted(s, 50),
        "p99": percentile_sorted(s, 99),
    }


def cosine(x: torch.Tensor, y: torch.Tensor) -> float:
    if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(y).all())):
        return math.nan
    nx, ny = float(torch.linalg.vector_norm(x)), float(torch.linalg.vector_norm(y))
    if nx == 0 or ny == 0:
        return 1.0 if nx == ny else 0.0
    return float(torch.dot(x.ravel(), y.ravel())) / (nx * ny)


def error_stats(b: torch.Tensor, o: torch.Tensor) -> dict[str, Any]:
    finite = torch.isfinite(o)
    absd = (b - o).abs()
    reld = absd / (b.abs() + metrics.EPS)
    fa, fr = absd[finite], reld[finite]
    all_finite = bool(finite.all())
    return {
        "abs": _stats(fa),
        "rel": _stats(fr),
        "min_atol": float(fa.max()) if fa.numel() and all_finite else math.inf,
        "min_rtol": float(fr.max()) if fr.numel() and all_finite else math.inf,
        "nan": int(torch.isnan(o).sum()),
        "inf": int(torch.isinf(o).sum()),
        "baseline_nan_or_inf": int((~torch.isfinite(b)).sum()),
        "cosine": cosine(b, o),
    }


def embedding(b: torch.Tensor, o: torch.Tensor, kind: str = "values") -> dict[str, Any]:
    b, o = b.reshape(b.shape[0], -1), o.reshape(o.shape[0], -1)
    sums = [
        (b * o).sum(1),
        torch.linalg.vector_norm(b, dim=1),
        torch.linalg.vector_norm(o, dim=1),
        torch.linalg.vector_norm(o - b, dim=1),
    ]
    num, nb, no, err = (s.cpu().numpy() for s in sums)
    return metrics.embedding_from_norms(num, nb, no, err, b.shape[1], kind)


def _quality(
    task: str,
    base: np.ndarray,
    out: np.ndarray,
    labels: np.ndarray | None,
    fractions: Sequence[float],
    regression_bound: float | None,
    kind: str,
    device: str,
) -> dict[str, Any]:
    b, o = _t(base, device), _t(out, device)
    sorted_abs = _finite_abs_sorted(b)
    scale, how = closeness_scale(sorted_abs, kind)
    diff = (b - o).abs()
    n = diff.numel()
    curve = {
        f"{f:g}": 100.0 * int(torch.count_nonzero(diff <= f * scale)) / n if n else 100.0 for f in fractions
    }
    del diff
    eq = torch.isclose(o, b, rtol=1e-3, atol=1e-8)
    q: dict[str, Any] = {
        "closeness": curve,
        "closeness_scale": {"value": scale, "kind": how, "output_kind": kind},
        "equality_pct": 100.0 * int(torch.count_nonzero(eq)) / eq.numel() if eq.numel() else 100.0,
        "errors": error_stats(b, o),
        "p90_abs_baseline": percentile_sorted(sorted_abs, 90) if sorted_abs.numel() else 0.0,
    }
    del eq, sorted_abs
    if task == "segmentation":
        lb = torch.argmax(b, dim=1).cpu().numpy()
        lo = torch.argmax(o, dim=1).cpu().numpy()
        q["segmentation"] = metrics.segmentation_labels(lb, lo, labels, num_classes=base.shape[1])
    elif task in ("embedding", "generic"):
        q[task] = embedding(b, o, kind)
    elif task == "classification":
        q["classification"] = metrics.classification(base, out, labels)
    elif task == "regression":
        q["regression"] = metrics.regression(base, out, labels, regression_bound)
    return q


def quality(
    task: str,
    base: np.ndarray,
    out: np.ndarray,
    labels: np.ndarray | None = None,
    fractions: Sequence[float] = metrics.CLOSENESS_FRACTIONS,
    regression_bound: float | None = 100.0,
    kind: str = "values",
    device: str = "cuda",
) -> dict[str, Any]:
    """:func:`metrics.quality` computed on ``device`` (on the host if the device runs out of memory)."""
    if base.shape != out.shape:
        raise ValueError(f"closeness: shapes differ, baseline {base.shape} vs output {out.shape}")
    try:
        q = _quality(task, base, out, labels, fractions, regression_bound, kind, device)
        q["computed_on"] = device
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        q = metrics.quality(task, base, out, labels, fractions, regression_bound, kind)
        q["computed_on"] = f"host ({device} ran out of memory)"
    return q


def _rel_l2(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> float:
    d = a - b
    if not bool(torch.isfinite(d).all()):
        return math.nan
    n = float(torch.linalg.vector_norm(scale))
    return float(torch.linalg.vector_norm(d)) / n if n > 0 else (0.0 if not bool(d.any()) else math.inf)


def sample_identity(out: torch.Tensor, ref: torch.Tensor) -> float:
    n = out.shape[0]
    if n < 2:
        return 1.0
    o = torch.nan_to_num(out.reshape(n, -1), nan=math.inf)
    r = ref.reshape(n, -1)
    d = (o * o).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2.0 * (o @ r.T)
    own = torch.diagonal(d)
    tol = 1e-9 * torch.clamp(own.abs(), min=1e-300)
    return float((own <= d.min(dim=1).values + tol).double().mean())


def against_reference(
    base: np.ndarray,
    out: np.ndarray,
    ref: np.ndarray,
    *,
    floor: float,
    task: str,
    trained: bool,
    exact: bool = False,
    kind: str = "values",
    device: str = "cuda",
) -> dict[str, Any]:
    """:func:`metrics.against_reference` computed on ``device`` (on the host if it runs out of memory)."""
    try:
        b, o, r = _t(base, device), _t(out, device), _t(ref, device)
        norm = torch.clamp(b.abs(), min=metrics.NEGLIGIBLE) if kind == "probability" else b
        e_ref = _rel_l2(r, b, norm)
        res: dict[str, Any] = {
            "error_vs_fp32": _rel_l2(o, b, norm),
            "ref_error_vs_fp32": e_ref,
            "distance_to_ref": _rel_l2(o, r, norm),
            "floor": floor,
            "sample_identity": sample_identity(o, r),
            "ref_sample_identity_vs_fp32": sample_identity(r, b),
        }
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return metrics.against_reference(
            base, out, ref, floor=floor, task=task, trained=trained, exact=exact, kind=kind
        )
    return metrics.finish_against_reference(
        res, base, out, ref, floor=floor, task=task, trained=trained, exact=exact
    )
