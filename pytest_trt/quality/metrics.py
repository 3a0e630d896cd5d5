"""Output-quality metrics (pure numpy): engine output vs the PyTorch fp32 baseline, and vs labels.

* closeness (reference study): share of elements with |base - out| <= f * p90(|base|), rtol = 0,
  for f in 0.005 .. 1 -- the whole curve;
* equality % (ArtTRT tables): ``isclose(rtol=1e-3, atol=1e-8)``;
* Polygraphy-style error statistics, the smallest atol/rtol that would pass, NaN/Inf counts, cosine;
* classification: top-1 agreement, top-5 overlap, per-rank MAE and disagreement (top 10), accuracy;
* segmentation: segmentation closeness, IoU/Dice against the baseline mask, mIoU against labels;
* regression: RMSE against ground truth (differences beyond a bound excluded) and vs the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

CLOSENESS_FRACTIONS = (0.005, 0.01, 0.1, 0.2, 0.5, 1.0)
EPS = 2.2e-16  # Polygraphy's epsilon for zeros in the reference


def _f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def p90_abs(base: np.ndarray) -> float:
    b = np.abs(_f64(base))
    b = b[np.isfinite(b)]
    return float(np.percentile(b, 90)) if b.size else 0.0


NEGLIGIBLE = 1e-3  # values below this share of the output's largest magnitude do not set its scale


def closeness_scale(base: np.ndarray, kind: str = "values") -> tuple[float, str]:
    """The magnitude closeness measures errors against, and what it is.

    ``p90_abs``: the 90th percentile of |base| (the reference study's scale), where most values matter.
    Where most are negligible (a sparse probability map, a softmax over thousands of classes: p90 there
    is 1e-6 of the peak, and "within 10 % of it" would mean bit-identical), the 90th percentile of the
    values that are not (``p90_abs_significant``).  An output the graph makes with a Sigmoid or Softmax
    (``kind="probability"``) is measured against its range, 1: a text detector's map on a picture
    without text is ~1e-7 everywhere, and its honest fp32 rounding is 10 % of that.  A baseline that is
    all zero, or has no finite value, has no scale (``degenerate: ...``, scale 0).
    """
    b = np.abs(_f64(base))
    b = b[np.isfinite(b)]
    if not b.size:
        return 0.0, "degenerate: no finite value"
    if kind == "probability":  # a Sigmoid/Softmax output: its range is [0, 1] whatever this batch holds
        return 1.0, "probability range"
    peak = float(b.max())
    if peak == 0.0:
        return 0.0, "degenerate: all zero"
    p90 = float(np.percentile(b, 90))
    if p90 >= NEGLIGIBLE * peak:
        return p90, "p90_abs"
    return float(np.percentile(b[b >= NEGLIGIBLE * peak], 90)), "p90_abs_significant"


def closeness(
    base: np.ndarray,
    out: np.ndarray,
    fractions: Sequence[float] = CLOSENESS_FRACTIONS,
    kind: str = "values",
    scale: float | None = None,
) -> dict[str, float]:
    """Percent of elements within f * scale of the baseline, for each f (NaN never counts); the scale is
    :func:`closeness_scale`'s (pass it when already known).  On a degenerate baseline (scale 0) the curve
    is the share of exactly equal elements, and the gates replace closeness (``gates.DEGENERATE_ATOL``)."""
    b, o = _f64(base), _f64(out)
    if b.shape != o.shape:
        raise ValueError(f"closeness: shapes differ, baseline {b.shape} vs output {o.shape}")
    if scale is None:
        scale, _ = closeness_scale(b, kind)
    diff = np.abs(b - o)
    n = diff.size
    res = {}
    for f in fractions:
        ok = diff <= f * scale  # NaN compares False: a NaN output is never close
        res[f"{f:g}"] = 100.0 * float(np.count_nonzero(ok)) / n if n else 100.0
    return res


def fraction_needed(base: np.ndarray, out: np.ndarray, share_pct: float, scale: float | None = None) -> float:
    """The smallest f for which closeness reaches ``share_pct`` (inf if NaNs prevent it); ``scale`` is the
    closeness scale the curve was computed with (default: :func:`closeness_scale` of ``base``)."""
    b, o = _f64(base), _f64(out)
    diff = np.abs(b - o).ravel()
    k = math.ceil(share_pct / 100.0 * diff.size)
    if k <= 0:
        return 0.0
    diff = np.where(np.isnan(diff), np.inf, diff)
    kth = float(np.partition(diff, k - 1)[k - 1])
    if scale is None:
        scale, _ = closeness_scale(b)
    if scale == 0.0:
        return 0.0 if kth == 0.0 else math.inf
    return kth / scale


def equality_pct(base: np.ndarray, out: np.ndarray, rtol: float = 1e-3, atol: float = 1e-8) -> float:
    eq = np.isclose(_f64(out), _f64(base), rtol=rtol, atol=atol)
    return 100.0 * float(np.count_nonzero(eq)) / eq.size if eq.size else 100.0


def error_stats(base: np.ndarray, out: np.ndarray) -> dict[str, Any]:
    b, o = _f64(base), _f64(out)
    finite = np.isfinite(o)
    absd = np.abs(b - o)
    reld = absd / (np.abs(b) + EPS)
    fa, fr = absd[finite], reld[finite]

    def stats(x: np.ndarray) -> dict[str, float]:
        if x.size == 0:
            return {"max": math.nan, "mean": math.nan, "median": math.nan, "p99": math.nan}
        return {
            "max": float(x.max()),
            "mean": float(x.mean()),
            "median": float(np.median(x)),
            "p99": float(np.percentile(x, 99)),
        }

    return {
        "abs": stats(fa),
        "rel": stats(fr),
        # Smallest tolerances that pass every element, each used alone (rtol=0 / atol=0).
        "min_atol": float(fa.max()) if fa.size and finite.all() else math.inf,
        "min_rtol": float(fr.max()) if fr.size and finite.all() else math.inf,
        "nan": int(np.isnan(o).sum()),
        "inf": int(np.isinf(o).sum()),
        "baseline_nan_or_inf": int((~np.isfinite(b)).sum()),
        "cosine": cosine(b, o),
    }


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    x, y = _f64(a).ravel(), _f64(b).ravel()
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return math.nan
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    if nx == 0 or ny == 0:
        return 1.0 if nx == ny else 0.0
    return float(np.dot(x, y) / (nx * ny))


def _topk(logits: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest per row, largest first (stable for ties: lower index first)."""
    order = np.argsort(-_f64(logits), axis=1, kind="stable")
    return order[:, :k]


def classification(
    base: np.ndarray, out: np.ndarray, labels: np.ndarray | None = None, ranks: int = 10
) -> dict[str, Any]:
    """Agreement of an engine's logits (N x C) with the baseline's, and accuracy when labelled."""
    b, o = _f64(base).reshape(base.shape[0], -1), _f64(out).reshape(out.shape[0], -1)
    n, c = b.shape
    k = min(ranks, c)
    tb, to = _topk(b, k), _topk(o, k)
    k5 = min(5, c)
    overlap = [len(set(tb[i, :k5]) & set(to[i, :k5])) / k5 for i in range(n)]
    sb = -np.sort(-b, axis=1)[:, :k]
    so = -np.sort(-o, axis=1)[:, :k]
    res: dict[str, Any] = {
        "top1_agreement": float(np.mean(tb[:, 0] == to[:, 0])),
        "top5_overlap": float(np.mean(overlap)),
        "rank_disagreement": [float(np.mean(tb[:, r] != to[:, r])) for r in range(k)],
        "rank_mae": [float(np.mean(np.abs(sb[:, r] - so[:, r]))) for r in range(k)],
        "samples": n,
    }
    if labels is not None:
        res.update(accuracy(o, labels, prefix=""))
        res.update(accuracy(b, labels, prefix="baseline_"))
    return res


def accuracy(logits: np.ndarray, labels: np.ndarray, prefix: str = "") -> dict[str, float]:
    lg = _f64(logits).reshape(logits.shape[0], -1)
    y = np.asarray(labels).reshape(-1)
    top = _topk(lg, min(5, lg.shape[1]))
    return {
        f"{prefix}accuracy_top1": float(np.mean(top[:, 0] == y)),
        f"{prefix}accuracy_top5": float(np.mean((top == y[:, None]).any(axis=1))),
    }


def segmentation(
    base: np.ndarray, out: np.ndarray, labels: np.ndarray | None = None, background: int = 0
) -> dict[str, Any]:
    """Per-pixel labels from N x C x H x W logits; closeness inside the baseline's foreground mask."""
    lb = np.argmax(base, axis=1)
    lo = np.argmax(out, axis=1)
    return segmentation_labels(lb, lo, labels, background, num_classes=base.shape[1])


def segmentation_labels(
    lb: np.ndarray,
    lo: np.ndarray,
    labels: np.ndarray | None = None,
    background: int = 0,
    num_classes: int | None = None,
) -> dict[str, Any]:
    fg_b = lb != background
    fg_o = lo != background
    mask = fg_b if fg_b.any() else np.ones_like(fg_b)
    inter = np.count_nonzero(fg_b & fg_o)
    union = np.count_nonzero(fg_b | fg_o)
    total = np.count_nonzero(fg_b) + np.count_nonzero(fg_o)
    res: dict[str, Any] = {
        "seg_closeness": 100.0 * float(np.count_nonzero((lb == lo) & mask)) / float(np.count_nonzero(mask)),
        "pixel_agreement": 100.0 * float(np.mean(lb == lo)),
        "mask_iou": float(inter / union) if union else 1.0,
        "mask_dice": float(2 * inter / total) if total else 1.0,
        "baseline_foreground_pct": 100.0 * float(np.mean(fg_b)),
    }
    if labels is not None:
        res["miou"] = mean_iou(lo, labels, num_classes)
        res["baseline_miou"] = mean_iou(lb, labels, num_classes)
    return res


def mean_iou(
    pred: np.ndarray, labels: np.ndarray, num_classes: int | None = None, ignore: int = 255
) -> float:
    valid = labels != ignore
    classes = np.unique(np.concatenate([labels[valid].ravel(), pred[valid].ravel()]))
    if num_classes is not None:
        classes = classes[classes < num_classes]
    ious = []
    for c in classes:
        p, t = (pred == c) & valid, (labels == c) & valid
        u = np.count_nonzero(p | t)
        if u:
            ious.append(np.count_nonzero(p & t) / u)
    return float(np.mean(ious)) if ious else math.nan


def regression(
    base: np.ndarray, out: np.ndarray, truth: np.ndarray | None = None, bound: float | None = 100.0
) -> dict[str, Any]:
    """RMSE vs ground truth excluding |diff| > bound (reference: +-100 K), and vs the baseline."""
    b, o = _f64(base), _f64(out)

    def rmse(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        d = x - y
        keep = np.isfinite(d) if bound is None else np.isfinite(d) & (np.abs(d) <= bound)
        excluded = 100.0 * (1 - float(np.mean(keep))) if d.size else 0.0
        return (float(np.sqrt(np.mean(d[keep] ** 2))) if keep.any() else math.nan), excluded

    r_base, ex_base = rmse(o, b)
    res: dict[str, Any] = {"rmse_vs_baseline": r_base, "excluded_pct_vs_baseline": ex_base, "bound": bound}
    if truth is not None:
        t = _f64(truth)
        res["rmse"], res["excluded_pct"] = rmse(o, t)
        res["baseline_rmse"], _ = rmse(b, t)
    return res


def quality(
    task: str,
    base: np.ndarray,
    out: np.ndarray,
    labels: np.ndarray | None = None,
    fractions: Sequence[float] = CLOSENESS_FRACTIONS,
    regression_bound: float | None = 100.0,
    kind: str = "values",
) -> dict[str, Any]:
    """All metrics for one output of one configuration, keyed as stored in ``extra_info.quality``."""
    scale, how = closeness_scale(base, kind)  # once: percentiles of a large output are not cheap
    q: dict[str, Any] = {
        "closeness": closeness(base, out, fractions, scale=scale),
        "closeness_scale": {"value": scale, "kind": how, "output_kind": kind},
        "equality_pct": equality_pct(base, out),
        "errors": error_stats(base, out),
        "p90_abs_baseline": p90_abs(base),
    }
    if task == "classification":
        q["classification"] = classification(base, out, labels)
    elif task == "segmentation":
        q["segmentation"] = segmentation(base, out, labels)
    elif task == "regression":
        q["regression"] = regression(base, out, labels, regression_bound)
    elif task == "embedding":
        q["embedding"] = embedding(base, out, kind)
    elif task == "generic":  # any tensor: per-sample cosine is meaningful whatever it holds
        q["generic"] = embedding(base, out, kind)
    return q


def embedding(base: np.ndarray, out: np.ndarray, kind: str = "values") -> dict[str, Any]:
    """Per-sample cosine similarity (what retrieval quality depends on).

    A sample whose baseline is near zero against the others (a picture without text for a text
    detector: its map is ~0) has no stable direction: two honest fp32 runs of it can point anywhere.
    Such a sample is scored by its error instead, ``1 - ||out - base|| / (typical sample norm)``, which
    is 1 when they agree as closely as the others do, and the count is reported (``near_zero_samples``).
    For a probability output both are against its range (RMS below 1e-3 is near zero; the error is an
    RMS in probability units), so a batch of maps that are all ~0 is not judged by the direction of
    rounding noise.
    """
    b, o = _f64(base).reshape(base.shape[0], -1), _f64(out).reshape(out.shape[0], -1)
    num = (b * o).sum(axis=1)
    nb, no = np.linalg.norm(b, axis=1), np.linalg.norm(o, axis=1)
    return embedding_from_norms(num, nb, no, np.linalg.norm(o - b, axis=1), b.shape[1], kind)


def embedding_from_norms(
    num: np.ndarray, nb: np.ndarray, no: np.ndarray, err: np.ndarray, width: int, kind: str = "values"
) -> dict[str, Any]:
    """:func:`embedding` from its per-sample sums: dot products, both norms, the norm of the difference
    (``width``: values per sample), however they were computed."""
    den = nb * no
    # Two all-zero outputs agree exactly (a ReLU output, an empty mask); one zero against a non-zero does not.
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(den > 0, num / np.where(den > 0, den, 1), np.where((nb == 0) & (no == 0), 1.0, 0.0))
    typical = float(np.median(nb)) if len(nb) else 0.0
    if kind == "probability":  # against the range: a batch of maps that are all ~0 is still ~0
        typical = math.sqrt(width)
    near_zero = (nb < NEGLIGIBLE * typical) if typical > 0 else np.zeros(len(nb), dtype=bool)
    if near_zero.any():
        cos = np.where(near_zero, 1.0 - np.minimum(err / typical, 2.0), cos)
    return {
        "cosine_mean": float(np.nanmean(cos)),
        "cosine_min": float(np.min(cos)),
        "samples": len(cos),
        "near_zero_samples": int(near_zero.sum()),
    }


# -- against a same-recipe reference (see pytest_trt.quality.reference and the rule in pytest_trt.quality.gates) -----


def rel_l2(a: np.ndarray, b: np.ndarray, scale: np.ndarray) -> float:
    """||a - b|| / ||scale||: a scale-free error (NaN when either side is not finite)."""
    d = _f64(a) - _f64(b)
    if not np.isfinite(d).all():
        return math.nan
    n = float(np.linalg.norm(_f64(scale)))
    return float(np.linalg.norm(d)) / n if n > 0 else (0.0 if not d.any() else math.inf)


def sample_identity(out: np.ndarray, ref: np.ndarray) -> float:
    """Share of samples whose output is (one of) the nearest to their *own* reference output.

    A correct engine perturbs each output far less than samples differ from one another; a batch
    mix-up (sample i answered with sample j's output) makes outputs nearest to other samples' refs.
    """
    n = out.shape[0]
    if n < 2:
        return 1.0
    o = np.nan_to_num(out.reshape(n, -1).astype(np.float64), nan=np.inf)
    r = ref.reshape(n, -1).astype(np.float64)
    d = (o * o).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2.0 * (o @ r.T)
    own = np.diag(d)
    tol = 1e-9 * np.maximum(np.abs(own), 1e-300)
    return float(np.mean(own <= d.min(axis=1) + tol))


def unexplained_flips(base: np.ndarray, out: np.ndarray, ref: np.ndarray, floor: float) -> dict[str, Any]:
    """Top-1 changes against the reference that rounding cannot explain.

    A flip of sample i is *explained* when, in the reference, the engine's class trails the reference's
    top-1 by no more than twice the largest logit change the recipe itself causes on that sample
    (``max |ref_i - base_i|``, at least ``floor`` x the sample's RMS logit).  Rounding can reorder
    nearly tied classes; it cannot overturn a decisive prediction.
    """
    b, o, r = (_f64(a).reshape(a.shape[0], -1) for a in (base, out, ref))
    top_r, top_o = r.argmax(1), o.argmax(1)
    rows = np.arange(len(r))
    gap = r[rows, top_r] - r[rows, top_o]
    budget = 2.0 * np.maximum(np.abs(r - b).max(1), floor * np.sqrt((b * b).mean(1)))
    flipped = top_r != top_o
    bad = flipped & (gap > budget)
    return {
        "flips_vs_ref": int(flipped.sum()),
        "unexplained_flips": int(bad.sum()),
        "unexplained_samples": [int(i) for i in np.flatnonzero(bad)[:10]],
    }


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
) -> dict[str, Any]:
    """Distances of engine and reference to fp32 and to each other, on the baseline's scale (for a
    probability output at least 1e-3 of its range per element: a map of ~0 has no scale of its own)."""
    norm = np.maximum(np.abs(_f64(base)), NEGLIGIBLE) if kind == "probability" else base
    e_ref = rel_l2(ref, base, norm)
    res: dict[str, Any] = {
        "error_vs_fp32": rel_l2(out, base, norm),
        "ref_error_vs_fp32": e_ref,
        "distance_to_ref": rel_l2(out, ref, norm),
        "floor": floor,
        "sample_identity": sample_identity(out, ref),
        "ref_sample_identity_vs_fp32": sample_identity(ref, base),
    }
    return finish_against_reference(res, base, out, ref, floor=floor, task=task, trained=trained, exact=exact)


def finish_against_reference(
    res: dict[str, Any],
    base: np.ndarray,
    out: np.ndarray,
    ref: np.ndarray,
    *,
    floor: float,
    task: str,
    trained: bool,
    exact: bool,
) -> dict[str, Any]:
    """The ratios of :func:`against_reference` from its distances (``res``), and the flips of a classifier."""
    e_ref = res["ref_error_vs_fp32"]
    # A mix-up is caught where the reference itself tells samples apart: where even the reference's
    # outputs are nearer to other samples' fp32 outputs (inputs the model maps alike, or a recipe whose
    # rounding exceeds their differences), the gate does not apply (gates.evaluate says why).
    res["sample_identity_required"] = min(1.0, res["ref_sample_identity_vs_fp32"])
    scale = max(e_ref, floor) if math.isfinite(e_ref) else math.nan
    res["ref_error_ratio"] = res["error_vs_fp32"] / scale
    # An exact reference runs the engine's own graph, so it is held to a much tighter distance.
    res["exact_ref_distance_ratio" if exact else "ref_distance_ratio"] = res["distance_to_ref"] / scale
    if task == "classification" and trained and out.ndim == 2:
        res.update(unexplained_flips(base, out, ref, floor))
    return res
