"""The GitHub workflows parse and call commands this project really has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", exc_type=ImportError)
ROOT = Path(__file__).resolve().parents[1]
WF = ROOT / ".github" / "workflows"


def load(name: str) -> dict:  # type: ignore[type-arg]
    doc = yaml.safe_load((WF / name).read_text())
    # YAML 1.1 reads the key `on` as True
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["ci.yml", "gpu-benchmarks.yml"])
def test_workflow_shape(name: str) -> None:
    doc = load(name)
    assert doc["name"] and doc["on"] and doc["jobs"]
    for job in doc["jobs"].values():
        assert job["runs-on"] and job["steps"] and job.get("timeout-minutes")
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
            if "uses" in step:
                assert re.match(r"^[\w.-]+/[\w.-]+@v\d+$", step["uses"]), step["uses"]


def test_ci_runs_the_readme_test_command() -> None:
    runs = [s.get("run", "") for s in load("ci.yml")["jobs"]["cpu"]["steps"]]
    assert "make test" in runs
    assert "smoke" in (ROOT / "Makefile").read_text().split("\ntest:", 1)[1].split("\n", 1)[0]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make bench" in readme


def test_gpu_workflow_gates_and_refreshes_baseline() -> None:
    doc = load("gpu-benchmarks.yml")
    job = doc["jobs"]["benchmark"]
    assert "self-hosted" in job["runs-on"] and "gpu-trt" in job["runs-on"]
    assert "schedule" in doc["on"] and "pull_request" in doc["on"]
    text = "\n".join(s.get("run", "") for s in job["steps"])
    assert "pytest-trt compare" in text and "--candidate results/run*.json" in text
    assert "pytest-trt report" in text and "tests/gpu" in text
    names = [s.get("name", "") for s in job["steps"]]
    assert any("Refresh the baseline" in n for n in names)
    # the commands used exist in the CLI
    from pytest_trt.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"compare", "report", "run"} <= set(sub)
