"""`pytest-trt compare`: the low-false-alarm rule on synthetic pytest-benchmark JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_trt.cli import main
from pytest_trt.gate import compare, results, side_by_side

NAMES = [f"bench.py::test_x[m{i}-onnxruntime-fp32-dynamic-b1-opt3]" for i in range(5)]


def run_json(
    path: Path,
    medians_ms: dict[str, float],
    *,
    seed: int,
    gpu: str = "NVIDIA H100",
    trt: str = "10.13",
    closeness: float = 99.5,
    recipe: str = "trt10-weak-fp16",
) -> Path:
    rng = np.random.default_rng(seed)
    benches = []
    for name, med in medians_ms.items():
        data = list(med / 1e3 * np.exp(rng.normal(0, 0.01, 100)))
        benches.append(
            {
                "group": None,
                "name": name.split("::")[1],
                "fullname": name,
                "params": None,
                "param": None,
                "stats": {
                    "median": float(np.median(data)),
                    "mean": float(np.mean(data)),
                    "min": min(data),
                    "max": max(data),
                    "p99": float(np.percentile(data, 99)),
                    "data": data,
                    "rounds": 100,
                },
                "extra_info": {
                    "status": "ok",
                    "valid": True,
                    "throughput_samples_per_s": 1e3 / med,
                    "recipe": {"name": recipe},
                    "quality": {"closeness": {"0.1": closeness, "1": 100.0}},
                },
            }
        )
    doc = {
        "machine_info": {"pytest_trt": {"gpu": gpu, "trt_version": trt, "driver": "580"}},
        "commit_info": {},
        "benchmarks": benches,
        "datetime": "2026-11-21T00:00:00",
        "version": "5.3.1",
    }
    path.write_text(json.dumps(doc))
    return path


def runs(tmp: Path, tag: str, n: int, slow: dict[str, float] | None = None, **kw: Any) -> list[str]:
    out = []
    rng = np.random.default_rng(sum(map(ord, tag)))
    for k in range(n):
        offset = float(rng.normal(0, 0.01))  # run-to-run noise of about 1%
        meds = {nm: 2.0 * (1 + offset) * (slow or {}).get(nm, 1.0) for nm in NAMES}
        out.append(str(run_json(tmp / f"{tag}{k}.json", meds, seed=k + (100 if tag == "c" else 0), **kw)))
    return out


def test_identical_runs_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = runs(tmp_path, "b", 5)
    assert main(["compare", *base, "--candidate", *base]) == 0
    assert "5 unchanged" in capsys.readouterr().out


def test_ten_percent_slowdown_on_one_benchmark_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = runs(tmp_path, "b", 5)
    cand = runs(tmp_path, "c", 5, slow={NAMES[2]: 1.10})
    assert main(["compare", *base, "--candidate", *cand]) == 1
    out, err = capsys.readouterr()
    assert NAMES[2] in err and "regressed" in out and "p=" in out and "over 5+5 runs" in out
    assert "1 regressed" in out


def test_three_percent_slowdown_exits_0(tmp_path: Path) -> None:
    base = runs(tmp_path, "b", 5)
    cand = runs(tmp_path, "c", 5, slow={n: 1.03 for n in NAMES})
    assert main(["compare", *base, "--candidate", *cand]) == 0


def test_dropped_closeness_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = run_json(tmp_path / "b.json", dict.fromkeys(NAMES, 2.0), seed=1)
    cand = run_json(tmp_path / "c.json", dict.fromkeys(NAMES, 2.0), seed=1, closeness=95.0)
    assert main(["compare", str(base), str(cand)]) == 1
    assert "quality dropped: closeness@0.1 99.5 -> 95" in capsys.readouterr().out


def test_other_gpu_or_trt_is_reported_not_judged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Not a regression (exit 1), and not a pass either: nothing was judged (exit 2)."""
    base = runs(tmp_path, "b", 3)
    cand = runs(tmp_path, "c", 3, slow=dict.fromkeys(NAMES, 1.3), gpu="NVIDIA A100", trt="11.4")
    assert main(["compare", *base, "--candidate", *cand]) == 2
    out = capsys.readouterr().out
    assert "gpu: NVIDIA H100 -> NVIDIA A100" in out and "trt_version: 10.13 -> 11.4" in out
    assert "incomparable" in out
    assert main(["compare", *base, "--candidate", *cand, "--across-env"]) == 1


def test_malformed_or_foreign_json_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = run_json(tmp_path / "g.json", {NAMES[0]: 1.0}, seed=0)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["compare", str(good), str(bad)]) == 2
    assert "bad.json: not valid JSON" in capsys.readouterr().err
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"results": []}))
    assert main(["compare", str(good), str(foreign)]) == 2
    assert "foreign.json: not a pytest-benchmark JSON file" in capsys.readouterr().err
    schema = tmp_path / "schema.json"
    doc = json.loads(good.read_text())
    doc["pytest_trt"] = {"schema": "other-tool/9", "cases": []}
    schema.write_text(json.dumps(doc))
    assert main(["compare", str(good), str(schema)]) == 2
    assert main(["compare", str(good), str(tmp_path / "missing*.json")]) == 2


def test_new_missing_failed_now(tmp_path: Path) -> None:
    base = run_json(tmp_path / "b.json", {NAMES[0]: 2.0, NAMES[1]: 2.0}, seed=1)
    cand_doc = json.loads(run_json(tmp_path / "c.json", {NAMES[0]: 2.0, NAMES[2]: 2.0}, seed=1).read_text())
    cand_doc["pytest_trt"] = {
        "schema": "pytest-trt/1",
        "cases": [{"nodeid": NAMES[1], "status": "build_failed", "extra_info": {}}],
    }
    (tmp_path / "c.json").write_text(json.dumps(cand_doc))
    v = {
        x.key: x.verdict
        for x in compare.compare_sides(
            results.load_side([base]), results.load_side([tmp_path / "c.json"]), compare.Rule()
        )
    }
    assert v == {NAMES[0]: "unchanged", NAMES[1]: "failed-now", NAMES[2]: "new"}


def test_side_by_side_by_trt_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = run_json(tmp_path / "a.json", {NAMES[0]: 2.0}, seed=1, trt="8.6.1", recipe="trt8.6-weak-fp16")
    b = run_json(tmp_path / "b.json", {NAMES[0]: 1.5}, seed=1, trt="10.13", recipe="trt10-weak-fp16")
    c = run_json(
        tmp_path / "c.json", {NAMES[0]: 1.2}, seed=1, trt="11.4", recipe="trt11-strong-onnx-fp16-keepio"
    )
    md = tmp_path / "sbs.md"
    assert main(["compare", str(a), str(b), str(c), "--by", "trt_version", "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    assert "10.13 (trt10-weak-fp16)" in out and "11.4 (trt11-strong-onnx-fp16-keepio)" in out
    sbs = side_by_side.side_by_side([a, b, c], "trt_version")
    row = sbs["rows"][NAMES[0]]
    assert row["8.6.1"] > row["10.13"] > row["11.4"]
    assert md.read_text().startswith("| result | 8.6.1")  # versions in release order


def test_json_and_markdown_outputs(tmp_path: Path) -> None:
    base = runs(tmp_path, "b", 3)
    out_json, out_md = tmp_path / "v.json", tmp_path / "v.md"
    main(["compare", *base, "--candidate", *base, "--json", str(out_json), "--markdown", str(out_md)])
    doc = json.loads(out_json.read_text())
    assert {v["verdict"] for v in doc["verdicts"]} == {"unchanged"} and doc["rule"]["threshold"] == 0.05
    assert "| verdict | result |" in out_md.read_text()


def test_in_session_gate(pytester: pytest.Pytester, tmp_path: Path) -> None:
    from tests.conftest import fast_args

    pytester.makepyfile(
        test_g="""
import pytest
@pytest.mark.trt_matrix(models=["tinycnn"], backends=["onnxruntime"], precisions=["fp32"], batches=[2])
def test_q(trt_run):
    trt_run.run()
"""
    )
    nodeid = "test_g.py::test_q[tinycnn-onnxruntime-fp32-dynamic-b2-opt3]"
    fast = run_json(tmp_path / "base.json", {nodeid: 1e-4}, seed=0, recipe="fp32")  # impossibly fast baseline
    r = pytester.runpytest(*fast_args(tmp_path / "cache"), f"--trt-baseline={fast}", "--trt-min-time=0")
    assert r.ret == 1
    r.stdout.fnmatch_lines(["*regression gate against*", "*regressed*test_q*", "*1 regression(s) among 1*"])
