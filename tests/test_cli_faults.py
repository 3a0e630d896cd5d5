"""``pytest-trt compare / merge / report`` under bad input: every case exits with its documented code
(0 judged and clean, 1 regression, 2 bad input or nothing judged) and a message, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_trt.cli import main
from tests.test_compare import NAMES, run_json, runs


def _edit(path: Path, change: object) -> Path:
    doc = json.loads(path.read_text())
    for b in doc["benchmarks"]:
        change(b)  # type: ignore[operator]
    path.write_text(json.dumps(doc))
    return path


def _two(tmp: Path) -> tuple[Path, Path]:
    meds = {n: 2.0 for n in NAMES}
    return run_json(tmp / "base.json", meds, seed=1), run_json(tmp / "cand.json", meds, seed=2)


@pytest.mark.parametrize("stats", ["missing", "null"])
def test_a_candidate_without_timing_or_quality_is_not_judged_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stats: str
) -> None:
    base, cand = _two(tmp_path)

    def strip(b: dict) -> None:  # type: ignore[type-arg]
        b.pop("stats") if stats == "missing" else b.update(stats=None)
        b["extra_info"].pop("quality")

    _edit(cand, strip)
    assert main(["compare", str(base), str(cand)]) == 2
    out, err = capsys.readouterr()
    assert "unjudged" in out and "nothing was judged" in err


def test_quality_is_still_judged_when_only_timing_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand = _two(tmp_path)
    _edit(cand, lambda b: b.update(stats=None))
    assert main(["compare", str(base), str(cand)]) == 0
    assert "quality held; no timing in the candidate" in capsys.readouterr().out


def test_every_result_invalid_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, cand = _two(tmp_path)
    _edit(cand, lambda b: b["extra_info"].update(valid=False))
    assert main(["compare", str(base), str(cand)]) == 2
    assert "5 invalid" in capsys.readouterr().err


def test_the_same_file_twice_in_a_side_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = runs(tmp_path, "b", 2)
    cand = runs(tmp_path, "c", 2)
    assert main(["compare", base[0], base[0], "--candidate", *cand]) == 2
    assert "same run" in capsys.readouterr().err


def test_a_benchmark_listed_twice_in_one_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand = _two(tmp_path)
    doc = json.loads(cand.read_text())
    doc["benchmarks"].append(dict(doc["benchmarks"][0]))
    cand.write_text(json.dumps(doc))
    assert main(["compare", str(base), str(cand)]) == 2
    assert "listed twice" in capsys.readouterr().err


def test_a_value_of_the_wrong_type_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand = _two(tmp_path)
    _edit(cand, lambda b: b["stats"].update(median="fast"))
    assert main(["compare", str(base), str(cand)]) == 2
    err = capsys.readouterr().err
    assert "stats.median is 'fast'" in err and "Traceback" not in err


def test_deeply_nested_json_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, _ = _two(tmp_path)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert main(["compare", str(base), str(deep)]) == 2
    assert "nested too deeply" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["compare --json", "merge --out", "report --out"])
def test_an_output_path_that_cannot_be_written_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    base, cand = _two(tmp_path)
    cmd, flag = command.split()
    blocker = tmp_path / "blocker"
    if cmd == "report":
        blocker.write_text("a file where the report directory should go")
        target = blocker / "sub"
    else:
        blocker.mkdir()
        target = blocker
    files = [str(base), str(cand)] if cmd != "merge" else [str(base)]
    assert main([cmd, *files, flag, str(target)]) == 2
    err = capsys.readouterr().err
    assert f"pytest-trt {cmd}: cannot write" in err and "choose another path" in err


def test_a_misspelled_model_is_one_usage_error_with_a_hint(pytester: pytest.Pytester) -> None:
    for name in ("test_a.py", "test_b.py"):
        pytester.makepyfile(
            **{
                name[:-3]: """
import pytest

@pytest.mark.trt_matrix(backends=["onnxruntime"], precisions=["fp32"])
def test_t(trt_run):
    trt_run.run()
"""
            }
        )
    r = pytester.runpytest(
        "-p", "no:cacheprovider", "--trt-device=cpu", "--trt-models=tinycn", "--collect-only"
    )
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*--trt-models: unknown model(s) tinycn ('tinycn': did you mean 'tinycnn'?)*"])
    assert "Traceback" not in r.stdout.str() + r.stderr.str()
