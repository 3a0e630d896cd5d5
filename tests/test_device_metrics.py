"""The device (torch) metrics are the host (numpy) metrics: same keys, same values, on the same outputs.

Run with torch on the CPU here; on a GPU machine ``PYTEST_TRT_METRICS_DEVICE=cuda`` runs them there.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pytest

from pytest_trt.quality import device_metrics, metrics

DEVICE = os.environ.get("PYTEST_TRT_METRICS_DEVICE", "cpu")


def assert_same(host: Any, dev: Any, path: str = "") -> None:
    if isinstance(host, dict):
        assert set(host) == set(dev) - {"computed_on"}, path
        for k in host:
            assert_same(host[k], dev[k], f"{path}.{k}")
    elif isinstance(host, list):
        assert len(host) == len(dev), path
        for i, (h, d) in enumerate(zip(host, dev, strict=True)):
            assert_same(h, d, f"{path}[{i}]")
    elif isinstance(host, float) and math.isnan(host):
        assert isinstance(dev, float) and math.isnan(dev), f"{path}: {dev} is not NaN"
    elif isinstance(host, (float, int)) and not isinstance(host, bool):
        assert dev == pytest.approx(host, rel=1e-9, abs=1e-12), path
    else:
        assert host == dev, path


def noisy(base: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (base + sigma * rng.normal(size=base.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def logits() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(4, 5, 24, 24)).astype(np.float32)


def test_segmentation_metrics_match_the_host(logits: np.ndarray) -> None:
    labels = np.random.default_rng(2).integers(0, 5, size=(4, 24, 24))
    out = noisy(logits, 0.05)
    host = metrics.quality("segmentation", logits, out, labels)
    assert_same(host, device_metrics.quality("segmentation", logits, out, labels, device=DEVICE))


def test_a_sparse_baseline_takes_the_significant_scale_on_both() -> None:
    base = np.zeros((3, 4000), dtype=np.float32)
    base[:, :40] = np.random.default_rng(3).normal(size=(3, 40))
    out = noisy(base, 1e-4)
    host = metrics.quality("generic", base, out)
    assert host["closeness_scale"]["kind"] == "p90_abs_significant"
    assert_same(host, device_metrics.quality("generic", base, out, device=DEVICE))


def test_near_zero_probability_maps_are_scored_alike() -> None:
    rng = np.random.default_rng(4)
    base = rng.uniform(0, 1, size=(5, 1, 16, 16)).astype(np.float32)
    base[2] = 1e-7  # a picture without text: its map has no direction of its own
    out = noisy(base, 1e-3)
    host = metrics.quality("generic", base, out, kind="probability")
    assert host["generic"]["near_zero_samples"] == 1
    assert_same(host, device_metrics.quality("generic", base, out, kind="probability", device=DEVICE))


def test_nan_and_inf_in_the_output_count_alike(logits: np.ndarray) -> None:
    out = noisy(logits, 0.01)
    out[0, 0, 0, :3] = np.nan
    out[1, 2, 5, 5] = np.inf
    host = metrics.quality("segmentation", logits, out)
    assert host["errors"]["nan"] == 3
    assert_same(host, device_metrics.quality("segmentation", logits, out, device=DEVICE))


def test_an_all_zero_baseline_is_degenerate_on_both() -> None:
    base = np.zeros((2, 64), dtype=np.float32)
    out = noisy(base, 1e-6)
    dev = device_metrics.quality("embedding", base, out, device=DEVICE)
    assert dev["closeness_scale"]["kind"] == "degenerate: all zero"
    assert_same(metrics.quality("embedding", base, out), dev)


@pytest.mark.parametrize("kind", ["values", "probability"])
def test_reference_distances_match_the_host(logits: np.ndarray, kind: str) -> None:
    base = np.abs(logits) / 4 if kind == "probability" else logits
    ref, out = noisy(base, 1e-3, seed=5), noisy(base, 2e-3, seed=6)
    out[[0, 1]] = out[[1, 0]]  # a batch mix-up: sample identity must say so on both
    args: dict[str, Any] = {"floor": 1e-3, "task": "segmentation", "trained": True, "kind": kind}
    host = metrics.against_reference(base, out, ref, **args)
    assert host["sample_identity"] == 0.5
    assert_same(host, device_metrics.against_reference(base, out, ref, device=DEVICE, **args))


def test_small_outputs_and_cpu_sessions_stay_on_the_host(logits: np.ndarray) -> None:
    assert not device_metrics.wanted("cpu", np.zeros(device_metrics.LARGE))
    assert not device_metrics.wanted("cuda:0", logits)
    assert not device_metrics.wanted(None, np.zeros(device_metrics.LARGE))


def test_the_environment_can_send_every_output_to_the_device(
    logits: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_TRT_DEVICE_METRICS_MIN", "0")
    assert device_metrics.threshold() == 0
    monkeypatch.setenv("PYTEST_TRT_DEVICE_METRICS_MIN", "many")  # not a count: the default stands
    assert device_metrics.threshold() == device_metrics.LARGE
