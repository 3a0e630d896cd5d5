"""The plugin end to end through pytester: collection, ids, -k, skips with reasons, JSON, cache reuse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import fast_args, load_json


def test_ids_and_k_selection(pytester: pytest.Pytester, bench_file: Path, shared_cache: Path) -> None:
    r = pytester.runpytest(
        *fast_args(shared_cache, "--trt-batch=1,4", "--trt-precision=fp32,int8"), "--co", "-q"
    )
    r.stdout.fnmatch_lines(
        [
            "*test_tiny[[]tinycnn-onnxruntime-fp32-dynamic-b1-opt3[]]",
            "*test_tiny[[]tinycnn-onnxruntime-int8-dynamic-b4-opt3[]]",
            "*test_tiny[[]tinycnn-torch-fp32-dynamic-b4-opt3[]]",
            "*test_tiny[[]tinycnn-tensorrt-fp32-dynamic-b1-opt3[]]",
        ]
    )
    assert "12 tests collected" in r.stdout.str()
    r = pytester.runpytest(
        *fast_args(shared_cache, "--trt-batch=1,4", "--trt-precision=fp32,int8"),
        "--co",
        "-q",
        "-k",
        "int8 and b4",
    )
    assert "3/12 tests collected (9 deselected)" in r.stdout.str()


def test_run_writes_json_with_extra_info(
    pytester: pytest.Pytester, bench_file: Path, shared_cache: Path
) -> None:
    out = pytester.path / "out.json"
    r = pytester.runpytest(
        *fast_args(shared_cache, "--trt-batch=2", "--trt-precision=fp32,int8"),
        f"--benchmark-json={out}",
        "-rs",
    )
    # onnxruntime fp32 + int8 and torch fp32 run; torch int8 and every tensorrt case skip with reasons.
    r.assert_outcomes(passed=3, skipped=3)
    r.stdout.fnmatch_lines(
        ["*SKIPPED*torch eager has no int8*", "*SKIPPED*tensorrt unavailable*import tensorrt*"]
    )
    data = load_json(out)
    by = {b["param"]: b for b in data["benchmarks"]}
    ei = by["tinycnn-onnxruntime-int8-dynamic-b2-opt3"]["extra_info"]
    for key in (
        "model",
        "backend",
        "precision",
        "profile",
        "batch",
        "opt_level",
        "weights",
        "status",
        "recipe",
        "throughput_samples_per_s",
        "latency_ms",
        "quality",
        "validity",
        "memory",
        "engine",
    ):
        assert key in ei, key
    assert ei["status"] == "ok" and ei["weights"] == "random(seed=0)+bn-stats" and ei["batch"] == 2
    assert ei["recipe"]["graph"] == "qdq-int8" and ei["engine"]["qdq_nodes"]["QuantizeLinear"] > 0
    assert set(ei["quality"]["closeness"]) == {"0.005", "0.01", "0.1", "0.2", "0.5", "1"}
    assert ei["throughput_samples_per_s"] > 0
    # One source of truth for CUDA graphs: the timing section (the engine section held a stale copy).
    assert "cuda_graph" not in ei["engine"] and ei["timing"]["cuda_graph"] is False
    ref = ei["quality"]["reference"]
    assert ref["kind"].startswith("ONNX Runtime CPU, Q/DQ graph unfused") and ref["exact"] is True
    assert "exact_ref_distance_ratio<=0.5" in ref["rule"] and ei["weights_kind"] == "random"
    st = by["tinycnn-onnxruntime-fp32-dynamic-b2-opt3"]["stats"]
    assert st["min"] <= st["p50"] == st["median"] <= st["max"] and st["rounds"] == 5
    assert "p90" not in st and "p99" not in st  # 5 samples support no tail percentile
    lat = by["tinycnn-onnxruntime-fp32-dynamic-b2-opt3"]["extra_info"]["latency_ms"]["model"]
    assert lat["p99"] is None and lat["median_ci95"][0] <= lat["median"] <= lat["median_ci95"][1]
    assert by["tinycnn-onnxruntime-fp32-dynamic-b2-opt3"]["options"]["timer"] == "pytest_trt_virtual_clock"
    cases = {c["id"]: c for c in data["pytest_trt"]["cases"]}
    assert cases["tinycnn-tensorrt-fp32-dynamic-b2-opt3"]["status"] == "skipped"
    assert "tensorrt" in cases["tinycnn-tensorrt-fp32-dynamic-b2-opt3"]["message"]
    assert data["machine_info"]["pytest_trt"]["onnxruntime"]
    marks = data["pytest_trt"]["timeline"]["marks"]
    order = ["configured", "first_case_started", "last_case_finished", "session_finished"]
    assert [marks[k] for k in order] == sorted(marks[k] for k in order)
    assert len(data["pytest_trt"]["timeline"]["cases"]) == 6  # every case that ran, skipped ones too
    assert set(ei["wall_s"]) == {"engine", "quality", "timing"} and ei["wall_s"]["timing"] > 0
    # pytest-benchmark's own CLI loads the file
    p = subprocess.run(
        [str(Path(sys.executable).parent / "pytest-benchmark"), "compare", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    assert "test_tiny" in p.stdout


def test_second_run_rebuilds_nothing(pytester: pytest.Pytester, bench_file: Path, tmp_path: Path) -> None:
    cache = tmp_path / "fresh-cache"
    args = fast_args(cache, "--trt-batch=1", "--trt-precision=fp16,int8", "--trt-backend=onnxruntime")
    first = pytester.runpytest(*args)
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(
        ["*pytest-trt cache*onnx: 1 built, 0 reused*onnx-fp16-converted: 1 built*onnx-qdq-int8: 1 built*"]
    )
    second = pytester.runpytest(*args)
    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines(
        [
            "*pytest-trt cache*onnx: 0 built, 1 reused*onnx-fp16-converted: 0 built, 1 reused*"
            "onnx-qdq-int8: 0 built, * reused*"
        ]
    )


def test_header_lists_backends_and_device(
    pytester: pytest.Pytester, bench_file: Path, shared_cache: Path
) -> None:
    r = pytester.runpytest(*fast_args(shared_cache), "--co", "-q", "-v")
    r.stdout.fnmatch_lines(["pytest-trt: device cpu*", "*tensorrt: unavailable (*", "*onnxruntime 1.*"])


def test_static_profile_and_batch_outside_dynamic_range(
    pytester: pytest.Pytester, bench_file: Path, shared_cache: Path
) -> None:
    r = pytester.runpytest(
        *fast_args(
            shared_cache,
            "--trt-backend=onnxruntime",
            "--trt-precision=fp32",
            "--trt-profile=static,dynamic",
            "--trt-batch=3,9",
            "--trt-dynamic-batch=1,4,8",
        ),
        "-rs",
    )
    r.assert_outcomes(passed=3, skipped=1)
    r.stdout.fnmatch_lines(["*batch 9 outside the dynamic profile 1..8*"])


def test_quality_gate_failure_states_values(pytester: pytest.Pytester, shared_cache: Path) -> None:
    pytester.makepyfile(
        test_gate="""
import pytest

@pytest.mark.trt_quality(int8=["closeness@0.005>=99.99"])
@pytest.mark.trt_matrix(models=["tinycnn"], backends=["onnxruntime"], precisions=["int8"], batches=[2])
def test_q(trt_run):
    trt_run.run()
"""
    )
    out = pytester.path / "g.json"
    r = pytester.runpytest(*fast_args(shared_cache), f"--benchmark-json={out}")
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(
        [
            "*quality gate failed for tinycnn-onnxruntime-int8-dynamic-b2-opt3*",
            "*closeness@0.005 = * (required >= 99.99) FAILED; smallest f reaching 99.99%: *",
        ]
    )
    # the timing was recorded before the gate failed: nothing is lost
    case = load_json(out)["pytest_trt"]["cases"][0]
    assert case["status"] == "quality_failed" and case["extra_info"]["latency_ms"]["model"]["n"] >= 5


def test_machine_info_is_taken_at_start_up_only_when_saving(
    pytester: pytest.Pytester, bench_file: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest-benchmark's machine description comes from start-up (its helper forks are cheap in a small
    process, and cost a second at the end of a GPU session); a run that saves nothing never asks."""
    import pytest_benchmark.plugin

    calls: list[int] = []
    real = pytest_benchmark.plugin.pytest_benchmark_generate_machine_info

    def counted() -> dict[str, object]:
        calls.append(1)
        return {**real(), "node": "described-at-start-up"}

    monkeypatch.setattr(pytest_benchmark.plugin, "pytest_benchmark_generate_machine_info", counted)
    args = fast_args(shared_cache, "--trt-batch=2", "--trt-precision=fp32", "--trt-backend=onnxruntime")
    pytester.runpytest(*args).assert_outcomes(passed=1)
    assert calls == []
    out = pytester.path / "out.json"
    pytester.runpytest(*args, f"--benchmark-json={out}").assert_outcomes(passed=1)
    assert calls == [1]
    info = load_json(out)["machine_info"]
    assert info["node"] == "described-at-start-up" and info["cpu"] and info["pytest_trt"]
