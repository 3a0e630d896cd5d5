"""A long run never looks stuck: progress lines, and the slowest cases with where their time went."""

from __future__ import annotations

import pytest

from pytest_trt.plugin import progress

WALL = {
    "engine": 1.0,
    "quality": 3.0,
    "timing": 2.0,
    "quality_parts": {"baseline": 0.2, "reference": 2.5},
    "timing_parts": {"prepare": 0.3, "loops": 1.5},
}


def test_a_line_comes_after_a_quiet_stretch_and_at_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    p = progress.Progress(total=3, verbose=False)
    clock[0] += 5
    assert p.case_done("a", WALL) is None  # 5 s since the start: too soon
    clock[0] += progress.EVERY_S
    line = p.case_done("b", WALL)
    assert line is not None and "2/3 cases" in line and "1 left" in line and "last: b in 6.0 s" in line
    assert "quality 3.0 s (reference 2.5)" in line and "timing 2.0 s (loops 1.5)" in line
    clock[0] += 1
    assert p.case_done("c", None) is not None  # the last case always says so


def test_verbose_runs_print_every_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress.time, "monotonic", lambda: 0.0)
    p = progress.Progress(total=5, verbose=True)
    assert p.case_done("a", WALL) is not None


def test_the_slowest_cases_come_first_with_their_split() -> None:
    records = [
        {"id": "fast", "extra_info": {"wall_s": {"engine": 0.1, "timing": 0.2}}},
        {"id": "slow", "extra_info": {"wall_s": WALL}},
        {"id": "skipped", "extra_info": {}},
    ]
    lines = progress.slowest(records)
    assert len(lines) == 2 and "slow" in lines[0] and "6.0 s" in lines[0] and "fast" in lines[1]
