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


def test_gpu_workflow_shards_merges_and_gates() -> None:
    doc = load("gpu-benchmarks.yml")
    env = doc["env"]
    bench, gate = doc["jobs"]["benchmark"], doc["jobs"]["gate"]
    assert "self-hosted" in bench["runs-on"] and "gpu-trt" in bench["runs-on"]
    assert "schedule" in doc["on"] and "pull_request" in doc["on"]
    # one runner per shard, shards 0..N-1, each running its share RUNS times
    assert bench["strategy"]["matrix"]["shard"] == list(range(int(env["SHARDS"])))
    run_text = "\n".join(s.get("run", "") for s in bench["steps"])
    assert "--trt-shard=${{ matrix.shard }}/$SHARDS" in run_text and 'seq 1 "$RUNS"' in run_text
    # the gate job waits for every shard, merges each run's shards, compares against stored history
    assert gate["needs"] == "benchmark" and "self-hosted" not in gate["runs-on"]
    gate_text = "\n".join(s.get("run", "") for s in gate["steps"])
    assert "pytest-trt merge" in gate_text and "--out results/run$i.json" in gate_text
    assert "pytest-trt compare --storage history --last 10 --candidate results/run*.json" in gate_text
    assert "pytest-trt report" in gate_text
    downloads = [s for s in gate["steps"] if s.get("uses", "").startswith("actions/download-artifact")]
    assert downloads and downloads[0]["with"]["pattern"] == "shard-*"
    uploads = [
        s["with"]["name"] for s in bench["steps"] if s.get("uses", "").startswith("actions/upload-artifact")
    ]
    assert uploads == ["shard-${{ matrix.shard }}"]
    # the commands and options used exist
    from pytest_trt.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"compare", "report", "run", "merge", "noise"} <= set(sub)
    compare_opts = {o for a in sub["compare"]._actions for o in a.option_strings}
    assert {"--storage", "--last", "--candidate", "--markdown", "--json"} <= compare_opts


def test_gpu_workflow_shards_cover_the_suite_exactly_once() -> None:
    """--trt-shard I/N over the workflow's N: every test id lands on exactly one runner."""
    from pytest_trt.run import shard

    n = int(load("gpu-benchmarks.yml")["env"]["SHARDS"])
    ids = [
        f"b.py::t[{m}-{b}-{p}-{prof}-b{bs}-opt3]"
        for m in ("resnet18", "resnet50", "mobilenet_v2")
        for b in ("tensorrt", "torch")
        for p in ("fp32", "fp16", "int8")
        for prof in ("static", "dynamic")
        for bs in (1, 32, 64)
    ]
    where = shard.assign(ids, n)
    assert set(where) == set(ids) and set(where.values()) == set(range(n))
