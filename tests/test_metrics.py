"""Quality metrics: properties (hypothesis) and brute-force cross-checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pytest_trt.quality import metrics

floats = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)
vec = arrays(np.float32, st.integers(2, 64), elements=floats)


@given(vec, st.data())
def test_closeness_monotone_in_f(base: np.ndarray, data: st.DataObject) -> None:
    noise = data.draw(arrays(np.float32, base.shape, elements=st.floats(-10, 10, width=32)))
    curve = metrics.closeness(base, base + noise)
    values = [curve[f"{f:g}"] for f in metrics.CLOSENESS_FRACTIONS]
    assert values == sorted(values)


@given(vec)
def test_closeness_of_identical_outputs_is_100(base: np.ndarray) -> None:
    assert set(metrics.closeness(base, base.copy()).values()) == {100.0}


@given(vec, st.data())
def test_closeness_invariant_to_permutation(base: np.ndarray, data: st.DataObject) -> None:
    out = base + data.draw(arrays(np.float32, base.shape, elements=st.floats(-5, 5, width=32)))
    perm = np.array(data.draw(st.permutations(range(base.size))))
    assert metrics.closeness(base, out) == metrics.closeness(base[perm], out[perm])


@given(vec, st.floats(50, 100))
def test_fraction_needed_reaches_the_share(base: np.ndarray, share: float) -> None:
    out = base * np.float32(1.01) + np.float32(0.5)
    f = metrics.fraction_needed(base, out, share)
    if np.isfinite(f) and metrics.p90_abs(base) > 0:
        assert metrics.closeness(base, out, [f * (1 + 1e-9)])[f"{f * (1 + 1e-9):g}"] >= share - 1e-9


def test_closeness_known_values_and_nan() -> None:
    base = np.array([1.0, 2.0, 3.0, 4.0, 10.0])  # p90(|base|) = 7.6
    out = base + np.array([0.0, 0.5, 1.0, 8.0, np.nan])
    c = metrics.closeness(base, out, [0.1, 1.0])
    assert c["0.1"] == 40.0  # |d| <= 0.76: 0.0 and 0.5
    assert c["1"] == 60.0  # |d| <= 7.6: adds 1.0; 8.0 is out; NaN never counts


def _brute_topk(row: np.ndarray, k: int) -> list[int]:
    return sorted(range(len(row)), key=lambda i: (-row[i], i))[:k]


@given(
    arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(2, 12)), elements=st.floats(-5, 5)), st.data()
)
def test_topk_metrics_match_brute_force(base: np.ndarray, data: st.DataObject) -> None:
    out = base + data.draw(arrays(np.float64, base.shape, elements=st.floats(-1, 1)))
    res = metrics.classification(base, out)
    n, c = base.shape
    k5 = min(5, c)
    top1 = np.mean([_brute_topk(base[i], 1) == _brute_topk(out[i], 1) for i in range(n)])
    overlap = np.mean(
        [len(set(_brute_topk(base[i], k5)) & set(_brute_topk(out[i], k5))) / k5 for i in range(n)]
    )
    assert res["top1_agreement"] == pytest.approx(top1)
    assert res["top5_overlap"] == pytest.approx(overlap)
    for r in range(min(10, c)):
        dis = np.mean([_brute_topk(base[i], r + 1)[r] != _brute_topk(out[i], r + 1)[r] for i in range(n)])
        assert res["rank_disagreement"][r] == pytest.approx(dis)


def test_accuracy_against_labels() -> None:
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    acc = metrics.accuracy(logits, np.array([1, 2, 2]))
    assert acc["accuracy_top1"] == pytest.approx(2 / 3) and acc["accuracy_top5"] == 1.0


@given(
    arrays(
        np.int64,
        st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(1, 8)),
        elements=st.integers(0, 4),
    )
)
def test_segmentation_closeness_of_mask_with_itself(labels: np.ndarray) -> None:
    res = metrics.segmentation_labels(labels, labels.copy())
    assert res["seg_closeness"] == 100.0 and res["mask_iou"] == 1.0 and res["mask_dice"] == 1.0


def test_segmentation_closeness_counts_inside_baseline_mask() -> None:
    lb = np.array([[[0, 1, 1, 2]]])
    lo = np.array([[[1, 1, 0, 2]]])
    res = metrics.segmentation_labels(lb, lo)
    assert res["seg_closeness"] == pytest.approx(100 * 2 / 3)  # 3 foreground pixels, 2 kept their label
    inter = len({1, 2, 3} & {0, 1, 3})
    union = len({1, 2, 3} | {0, 1, 3})
    assert res["mask_iou"] == pytest.approx(inter / union)


def test_regression_rmse_excludes_beyond_bound() -> None:
    truth = np.zeros(10)
    out = np.array([1.0] * 9 + [1000.0])
    res = metrics.regression(out, out, truth, bound=100)
    assert res["rmse"] == pytest.approx(1.0) and res["excluded_pct"] == pytest.approx(10.0)
    assert metrics.regression(out, out, truth, bound=None)["rmse"] > 300


def test_error_stats_polygraphy_style() -> None:
    base = np.array([1.0, -2.0, 0.0, 4.0])
    out = np.array([1.1, -2.0, 0.0, 3.0])
    e = metrics.error_stats(base, out)
    assert e["min_atol"] == pytest.approx(1.0) and e["min_rtol"] == pytest.approx(0.25)
    assert e["nan"] == 0 and 0.9 < e["cosine"] < 1.0
    e2 = metrics.error_stats(base, np.array([1.0, np.nan, np.inf, 4.0]))
    assert e2["nan"] == 1 and e2["inf"] == 1 and e2["min_atol"] == float("inf")


def test_equality_pct_uses_isclose_defaults_of_arttrt() -> None:
    base = np.array([1.0, 1.0, 1.0, 1.0])
    out = np.array([1.0, 1.0005, 1.002, 2.0])
    assert metrics.equality_pct(base, out) == 50.0


def test_cosine_edge_cases() -> None:
    assert metrics.cosine(np.zeros(3), np.zeros(3)) == 1.0
    assert np.isnan(metrics.cosine(np.array([1.0, np.nan]), np.array([1.0, 2.0])))
    assert list(itertools.islice(metrics.CLOSENESS_FRACTIONS, 2)) == [0.005, 0.01]


def test_closeness_scale_is_the_p90_where_most_values_matter() -> None:
    base = np.linspace(1.0, 2.0, 100)
    scale, kind = metrics.closeness_scale(base)
    assert kind == "p90_abs" and scale == pytest.approx(np.percentile(base, 90))


def test_a_softmax_over_many_classes_is_measured_against_its_significant_values() -> None:
    """6,625-way probabilities: p90 over all of them is ~1e-6 of the peak; 'within 10 % of that' would
    demand bit-identical outputs from an honest fp16 engine."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1, (8, 40, 6625))
    logits[..., 0] += 14.0  # a confident prediction per time step, as a trained recognizer makes
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    scale, kind = metrics.closeness_scale(probs)
    assert kind == "p90_abs_significant" and scale > 100 * metrics.p90_abs(probs)
    honest = probs * (1 + rng.normal(0, 1e-3, probs.shape))  # fp16-sized rounding
    assert metrics.closeness(probs, honest)["0.1"] >= 99.9
    noisy = probs + rng.normal(0, 0.2 * scale, probs.shape)
    assert metrics.closeness(probs, noisy)["0.1"] < 99  # a corruption on the scale that matters still fails


@pytest.mark.parametrize("base", [np.zeros((4, 8)), np.full((4, 8), np.nan)], ids=["all-zero", "nan"])
def test_a_baseline_without_scale_is_reported_degenerate(base: np.ndarray) -> None:
    scale, kind = metrics.closeness_scale(base)
    assert scale == 0.0 and kind.startswith("degenerate")
    assert metrics.closeness(base, base + 1e-9)["1"] == 0.0  # no scale: only exact equality would count


def test_a_near_zero_sample_is_scored_by_its_error_not_an_unstable_cosine() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(5, 100))
    base[2] *= 1e-9  # a picture without text: its map is ~0
    honest = base + rng.normal(0, 1e-7, base.shape)  # fp32 noise: a random direction on the ~0 sample
    e = metrics.embedding(base, honest)
    assert e["near_zero_samples"] == 1 and e["cosine_min"] > 0.9999
    broken = honest.copy()
    broken[2] = base[0]  # a large output where the baseline has none
    assert metrics.embedding(base, broken)["cosine_min"] < 0.5


def test_the_identity_an_engine_owes_is_what_the_reference_itself_achieves() -> None:
    rng = np.random.default_rng(2)
    alike = np.repeat(rng.normal(size=(1, 50)), 8, axis=0) + rng.normal(
        0, 1e-6, (8, 50)
    )  # inputs mapped alike
    ref = alike + rng.normal(0, 1e-4, alike.shape)  # the recipe's rounding exceeds their differences
    res = metrics.against_reference(alike, ref, ref, floor=1e-3, task="generic", trained=True)
    assert res["sample_identity_required"] == res["ref_sample_identity_vs_fp32"] < 1
    distinct = rng.normal(size=(8, 50))
    res = metrics.against_reference(distinct, distinct, distinct, floor=1e-3, task="generic", trained=True)
    assert res["sample_identity_required"] == 1.0
