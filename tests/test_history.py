"""History: compare against pytest-benchmark's own storage (last N runs); the report's timeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pytest_trt.cli import main
from pytest_trt.gate import history
from pytest_trt.gate.runs import load_run
from tests.test_compare import NAMES, run_json

MACHINE = "Linux-CPython-3.11-64bit"


def storage(tmp: Path, n: int, slow_last: float = 1.0, machine: str = MACHINE) -> Path:
    """``n`` stored runs as --benchmark-autosave lays them out; the newest one ``slow_last`` x slower on NAMES[1]."""
    root = tmp / ".benchmarks"
    d = root / machine
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for k in range(n):
        factor = slow_last if k == n - 1 else 1.0
        meds = {
            nm: 2.0 * float(np.exp(rng.normal(0, 0.005))) * (factor if nm == NAMES[1] else 1.0)
            for nm in NAMES
        }
        p = run_json(d / f"{k + 1:04d}_abc{k}.json", meds, seed=k)
        doc = json.loads(p.read_text())
        doc["datetime"] = f"2026-11-{k + 1:02d}T03:00:00"
        doc["commit_info"] = {"id": f"{k:07d}deadbeef"}
        for j, b in enumerate(doc["benchmarks"]):
            b["extra_info"]["batch"] = 1 if j % 2 == 0 else 32
        p.write_text(json.dumps(doc))
    return root


def test_storage_is_read_oldest_first_and_split(tmp_path: Path) -> None:
    root = storage(tmp_path, 6)
    files = history.storage_files(f"file://{root}")
    assert [f.name[:4] for f in files] == ["0001", "0002", "0003", "0004", "0005", "0006"]
    base, cand = history.split_last(files, last=3, candidates=1)
    assert [f.name[:4] for f in base] == ["0003", "0004", "0005"] and [f.name[:4] for f in cand] == ["0006"]
    with pytest.raises(history.ResultsError, match="no machine directory 'other'"):
        history.storage_files(root, machine="other")


def test_compare_newest_stored_run_against_the_last_n(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = storage(tmp_path, 8, slow_last=1.10)
    assert main(["compare", "--storage", str(root), "--last", "5"]) == 1
    out, err = capsys.readouterr()
    assert "baseline: 5 run(s); candidate: 1 run(s)" in out and NAMES[1] in err and "1 regressed" in out
    # the same storage with an unchanged newest run passes
    root2 = storage(tmp_path / "quiet", 8)
    assert main(["compare", "--storage", str(root2), "--last", "5"]) == 0
    assert f"{len(NAMES)} unchanged" in capsys.readouterr().out


def test_compare_candidate_files_against_storage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = storage(tmp_path, 5)
    rng = np.random.default_rng(11)
    cand = [
        str(
            run_json(
                tmp_path / f"c{i}.json",
                {n: 2.0 * float(np.exp(rng.normal(0, 0.005))) * 1.10 for n in NAMES},
                seed=50 + i,
            )
        )
        for i in range(3)
    ]
    assert main(["compare", "--storage", str(root), "--last", "5", "--candidate", *cand]) == 1
    assert f"{len(NAMES)} regressed" in capsys.readouterr().out


def test_storage_errors_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--storage", str(tmp_path / "nowhere")]) == 2
    assert "no pytest-benchmark storage here" in capsys.readouterr().err
    (tmp_path / "empty" / MACHINE).mkdir(parents=True)
    assert main(["compare", "--storage", str(tmp_path / "empty")]) == 2
    assert "holds no runs" in capsys.readouterr().err
    root = storage(tmp_path / "one", 1)
    assert main(["compare", "--storage", str(root)]) == 2
    assert "not enough" in capsys.readouterr().err


def test_timeline_bands_and_marks_the_slow_run(tmp_path: Path) -> None:
    root = storage(tmp_path, 8, slow_last=1.10)
    tl = history.timeline([load_run(p) for p in history.storage_files(root)], window=5)
    slow = tl[NAMES[1]]
    assert [p.verdict for p in slow][-1] == "regressed" and slow[-1].band_ms is not None
    assert slow[-1].median_ms > slow[-1].band_ms[1]  # outside the band of the runs before
    assert all(p.verdict in ("", "unchanged") for k, pts in tl.items() if k != NAMES[1] for p in pts)
    assert slow[0].band_ms is None and slow[0].verdict == ""  # nothing to compare the first runs with


def test_report_draws_history_and_lists_the_regression(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    root = storage(tmp_path, 6, slow_last=1.10)
    out = tmp_path / "rep"
    assert main(["report", "--storage", str(root), "--out", str(out), "--window", "4"]) == 0
    assert (out / "history.png").stat().st_size > 10_000
    md = (out / "report.md").read_text()
    assert "## Changes over the runs" in md and f"`{NAMES[1]}` regressed" in md and "run 5" in md


def test_noise_cli_fits_per_batch_and_says_runs_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = storage(tmp_path, 6)
    files = [str(p) for p in history.storage_files(root)]
    out = tmp_path / "noise.json"
    assert main(["noise", *files, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    model = json.loads(out.read_text())["model"]
    assert (
        "batch 1: run-to-run sd" in text
        and "batch 32: run-to-run sd" in text
        and "runs per side for 5%" in text
    )
    assert set(model["by_batch"]) == {"1", "32"}
    assert model["pooled"]["df"] == len(NAMES) * 5 and 0.002 < model["pooled"]["run_sd"] < 0.02
    # the fitted file is accepted by compare as its prior
    assert main(["compare", "--storage", str(root), "--last", "4", "--noise-model", str(out)]) == 0
    assert main(["noise", files[0], "--out", str(out)]) == 2  # one run cannot show run-to-run noise
    assert "two or more runs" in capsys.readouterr().err


def test_merge_joins_shards_and_refuses_overlap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = run_json(tmp_path / "run1-shard0.json", {NAMES[0]: 1.0, NAMES[1]: 2.0}, seed=1)
    b = run_json(tmp_path / "run1-shard1.json", {NAMES[2]: 3.0}, seed=2)
    out = tmp_path / "run1.json"
    assert main(["merge", str(tmp_path / "run1-shard*.json"), "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert sorted(x["fullname"] for x in merged["benchmarks"]) == sorted(NAMES[:3])
    assert {x["extra_info"]["shard"] for x in merged["benchmarks"]} == {a.stem, b.stem}
    run_json(tmp_path / "run1-shard1.json", {NAMES[1]: 3.0}, seed=2)
    assert main(["merge", str(tmp_path / "run1-shard*.json"), "--out", str(tmp_path / "x.json")]) == 2
    assert "more than one file" in capsys.readouterr().err
