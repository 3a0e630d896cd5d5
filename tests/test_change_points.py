"""History that names the culprit run: E-divisive change points (Apache Otava) over stored medians."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_trt.gate import change_points, history
from pytest_trt.gate.runs import load_run
from pytest_trt.report.build import write_report
from tests.test_compare import NAMES, run_json

pytest.importorskip("otava", reason="change points need Apache Otava: pip install --no-deps apache-otava")


def _history(tmp: Path, n: int, change_at: int | None, factor: float = 1.10) -> list[Path]:
    """``n`` stored runs with ~1 % run-to-run noise; from run ``change_at`` on, NAMES[1] is ``factor`` slower."""
    rng = np.random.default_rng(3)
    paths = []
    for k in range(n):
        meds = {nm: 2.0 * float(np.exp(rng.normal(0, 0.01))) for nm in NAMES[:3]}
        if change_at is not None and k >= change_at:
            meds[NAMES[1]] *= factor
        paths.append(run_json(tmp / f"run{k:02d}.json", meds, seed=k))
    return paths


def _timeline(paths: list[Path]) -> dict[str, list[history.Point]]:
    return history.timeline([load_run(p) for p in paths])


def test_a_planted_change_is_found_at_the_run_that_made_it(tmp_path: Path) -> None:
    tl = _timeline(_history(tmp_path, 20, change_at=12))
    found = change_points.find(tl[NAMES[1]])
    assert [c.run for c in found] == [12]
    assert found[0].change == pytest.approx(0.10, abs=0.02)


def test_an_unchanged_history_has_no_change_point(tmp_path: Path) -> None:
    tl = _timeline(_history(tmp_path, 20, change_at=None))
    assert all(change_points.find(pts) == [] for pts in tl.values())


def test_a_change_below_the_threshold_is_not_called(tmp_path: Path) -> None:
    tl = _timeline(_history(tmp_path, 20, change_at=12, factor=1.03))
    assert change_points.find(tl[NAMES[1]]) == []


def test_the_report_names_the_first_run_of_the_change(tmp_path: Path) -> None:
    paths = _history(tmp_path, 16, change_at=9)
    md = write_report(paths, tmp_path / "report")["markdown"].read_text()
    section = md.split("## Change points (E-divisive means, Apache Otava)")[1].split("##")[0]
    assert "run 9 " in section and NAMES[1] in section and "slower by" in section
    assert NAMES[0] not in section and NAMES[2] not in section
