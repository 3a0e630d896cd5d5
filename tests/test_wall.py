"""Where the wall time goes: one process's timeline, and how evenly GPU processes shared a run."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pytest_trt.run import wall


def test_timeline_marks_cases_in_order() -> None:
    t = wall.Timeline()
    t.mark("configured")
    t.case_started("a.py::t[x]")
    t.case_finished("a.py::t[x]")
    t.case_finished("a.py::t[never-started]")  # a case claimed by another process: nothing recorded
    first = t.marks["first_case_started"]
    t.mark("first_case_started")  # a mark is the first time only
    d = t.as_dict()
    assert d["marks"]["first_case_started"] == first
    assert [c["nodeid"] for c in d["cases"]] == ["a.py::t[x]"] and d["cases"][0]["seconds"] >= 0
    m = d["marks"]
    assert m["configured"] <= m["first_case_started"] <= m["last_case_finished"] <= time.time()


def test_process_start_is_before_now() -> None:
    started = wall.process_started()
    if started is None:
        pytest.skip("no /proc on this system: the start time is not known")
    assert started <= time.time() and time.time() - started < 24 * 3600  # this test process, not boot


def test_process_start_is_known_to_the_clock_tick() -> None:
    if wall.process_started() is None:
        pytest.skip("no /proc on this system: the start time is not known")
    before = time.time()
    code = "import time; from pytest_trt.run import wall; print(wall.process_started(), time.time())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    started, now = map(float, out.split())
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert before - 2 * tick <= started <= now  # boot time in whole seconds would miss by up to 1 s


def _run(first: float, last: float, seconds: list[float]) -> dict[str, object]:
    cases = [{"nodeid": str(i), "started": first, "seconds": s} for i, s in enumerate(seconds)]
    marks = {"first_case_started": first, "last_case_finished": last}
    return {"pytest_trt": {"timeline": {"marks": marks, "cases": cases}}}


def test_balance_reports_start_up_busy_time_and_idle_at_the_end() -> None:
    launched = 1000.0
    rows = wall.balance(
        [_run(1005.0, 1050.0, [20.0, 25.0]), _run(1006.0, 1053.0, [47.0]), {"benchmarks": []}],
        ["gpu0", "gpu1", "gpu2"],
        launched,
    )
    assert [r["startup_s"] for r in rows] == [5.0, 6.0, None]
    assert [r["cases_s"] for r in rows] == [45.0, 47.0, 0]
    assert [r["idle_at_end_s"] for r in rows] == [3.0, 0.0, None]  # gpu0 waited 3 s for gpu1
    lines = wall.render_balance(rows)
    assert lines[0] == "gpu0: start-up 5.0 s, 2 cases 45.0 s, idle at the end 3.0 s"
    assert lines[2].startswith("gpu2: start-up -")
