"""Evaluation sets sized to what the gates need: a dense per-pixel model is judged on a fixed number of
pixels (16 images at 320 px) whatever its resolution, unless the user set the count."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import fast_args

COUNTS = """
import dataclasses
import pytest

@pytest.mark.trt_matrix(models=["{model}"], hws=[320, 640, 960], batches=[1], profiles=["dynamic"],
                        backends=["torch"], precisions=["fp32"])
def test_count(trt_session, trt_case):
    trt_session.data = dataclasses.replace(trt_session.data, eval_samples=64)  # the GPU default
    print("COUNT", trt_case.hw, trt_session.eval_count(trt_case))
"""


def _counts(pytester: pytest.Pytester, tmp_path: Path, model: str, *extra: str) -> dict[int, int]:
    pytester.makepyfile(test_counts=COUNTS.format(model=model))
    # the default count, not the short runs' own --trt-samples
    args = [a for a in fast_args(tmp_path / "cache") if not a.startswith("--trt-samples")]
    res = pytester.runpytest_inprocess(*args, "-s", *extra)
    found = re.findall(r"COUNT (\w+) (\d+)", res.stdout.str())
    return {int(hw) if hw.isdigit() else 0: int(n) for hw, n in found}


def test_a_segmenter_is_judged_on_a_fixed_number_of_pixels_at_any_resolution(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    assert _counts(pytester, tmp_path, "lraspp_mobilenet_v3_large") == {320: 16, 640: 4, 960: 4}


def test_the_users_sample_count_is_kept(pytester: pytest.Pytester, tmp_path: Path) -> None:
    counts = _counts(pytester, tmp_path, "lraspp_mobilenet_v3_large", "--trt-samples=64")
    assert counts == {320: 64, 640: 64, 960: 64}


def test_a_classifier_keeps_the_default_count_at_any_resolution(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    assert set(_counts(pytester, tmp_path, "mobilenet_v2").values()) == {64}
