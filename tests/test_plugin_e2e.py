"""The plugin end to end through pytester: collection, ids, -k, skips with reasons, JSON, cache reuse."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BENCH, fast_args, load_json


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


@dataclass
class SmallRun:
    """One run of the tiny benchmark (onnxruntime, torch and tensorrt; fp32 and int8; batch 2)."""

    returncode: int
    stdout: str
    out: Path
    data: dict[str, Any]

    def extra_info(self, param: str) -> dict[str, Any]:
        return self.benchmark(param)["extra_info"]  # type: ignore[no-any-return]

    def benchmark(self, param: str) -> dict[str, Any]:
        return next(b for b in self.data["benchmarks"] if b["param"] == param)


INT8 = "tinycnn-onnxruntime-int8-dynamic-b2-opt3"
FP32 = "tinycnn-onnxruntime-fp32-dynamic-b2-opt3"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> SmallRun:
    """Shared by the tests below: each checks one behaviour of the same run's output."""
    here = tmp_path_factory.mktemp("small-run")
    (here / "test_bench.py").write_text(BENCH)
    out = here / "out.json"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *fast_args(shared_cache, "--trt-batch=2", "--trt-precision=fp32,int8"),
            f"--benchmark-json={out}",
            "-rs",
            str(here / "test_bench.py"),
        ],
        cwd=here,
        capture_output=True,
        text=True,
        check=False,
    )
    return SmallRun(p.returncode, p.stdout, out, load_json(out) if out.exists() else {})


def test_cases_that_cannot_run_here_skip_with_their_reason(small_run: SmallRun) -> None:
    # onnxruntime fp32 + int8 and torch fp32 run; torch int8 and every tensorrt case skip with reasons.
    assert small_run.returncode == 0, small_run.stdout[-2000:]
    assert "3 passed, 3 skipped" in small_run.stdout
    assert "torch eager has no int8" in small_run.stdout
    assert "tensorrt unavailable" in small_run.stdout and "import tensorrt" in small_run.stdout


def test_each_result_carries_its_configuration_and_measurements(small_run: SmallRun) -> None:
    ei = small_run.extra_info(INT8)
    keys = {"model", "backend", "precision", "profile", "batch", "opt_level", "weights", "status", "recipe"}
    keys |= {"throughput_samples_per_s", "latency_ms", "quality", "validity", "memory", "engine"}
    assert keys <= set(ei)
    assert (ei["status"], ei["weights"], ei["weights_kind"], ei["batch"]) == (
        "ok",
        "random(seed=0)+bn-stats",
        "random",
        2,
    )
    assert ei["throughput_samples_per_s"] > 0


def test_an_int8_result_names_its_graph_recipe_and_exact_reference(small_run: SmallRun) -> None:
    ei = small_run.extra_info(INT8)
    assert ei["recipe"]["graph"] == "qdq-int8" and ei["engine"]["qdq_nodes"]["QuantizeLinear"] > 0
    ref = ei["quality"]["reference"]
    assert ref["kind"].startswith("ONNX Runtime CPU, Q/DQ graph unfused") and ref["exact"] is True
    assert "exact_ref_distance_ratio<=0.5" in ref["rule"]  # the rule's own: no override for onnxruntime


def test_closeness_is_reported_at_every_fraction(small_run: SmallRun) -> None:
    assert set(small_run.extra_info(INT8)["quality"]["closeness"]) == {
        "0.005",
        "0.01",
        "0.1",
        "0.2",
        "0.5",
        "1",
    }


def test_cuda_graph_use_is_recorded_once_in_the_timing_section(small_run: SmallRun) -> None:
    ei = small_run.extra_info(INT8)
    assert "cuda_graph" not in ei["engine"] and ei["timing"]["cuda_graph"] is False


def test_stats_hold_only_the_percentiles_the_samples_support(small_run: SmallRun) -> None:
    st = small_run.benchmark(FP32)["stats"]
    assert st["min"] <= st["p50"] == st["median"] <= st["max"] and st["rounds"] == 5
    assert "p90" not in st and "p99" not in st  # 5 samples support no tail percentile
    lat = small_run.extra_info(FP32)["latency_ms"]["model"]
    assert lat["p99"] is None and lat["median_ci95"][0] <= lat["median"] <= lat["median_ci95"][1]


def test_results_are_timed_on_the_virtual_clock(small_run: SmallRun) -> None:
    assert small_run.benchmark(FP32)["options"]["timer"] == "pytest_trt_virtual_clock"


def test_skipped_cases_are_recorded_with_their_reason(small_run: SmallRun) -> None:
    cases = {c["id"]: c for c in small_run.data["pytest_trt"]["cases"]}
    skipped = cases["tinycnn-tensorrt-fp32-dynamic-b2-opt3"]
    assert skipped["status"] == "skipped" and "tensorrt" in skipped["message"]


def test_machine_info_names_the_engine_libraries(small_run: SmallRun) -> None:
    assert small_run.data["machine_info"]["pytest_trt"]["onnxruntime"]


def test_the_timeline_marks_are_in_order_and_cover_every_case(small_run: SmallRun) -> None:
    timeline = small_run.data["pytest_trt"]["timeline"]
    order = ["configured", "first_case_started", "last_case_finished", "session_finished"]
    assert [timeline["marks"][k] for k in order] == sorted(timeline["marks"][k] for k in order)
    assert len(timeline["cases"]) == 6  # every case that ran, skipped ones too


def test_each_case_records_where_its_wall_time_went(small_run: SmallRun) -> None:
    wall = small_run.extra_info(INT8)["wall_s"]
    assert (
        set(wall) == {"engine", "quality", "timing", "quality_parts", "timing_parts"} and wall["timing"] > 0
    )
    assert set(wall["quality_parts"]) == {"baseline", "engine_outputs", "reference", "metrics"}
    timing_steps = {"feed", "memory_reset", "telemetry_start", "prepare", "warm_up", "loops"}
    assert timing_steps | {"telemetry_stop", "async_throughput"} == set(wall["timing_parts"])
    # the steps account for the stage's seconds (this run times in its own process: no worker handover)
    assert sum(wall["timing_parts"].values()) == pytest.approx(wall["timing"], rel=0.2, abs=0.05)


def test_pytest_benchmarks_own_cli_reads_the_file(small_run: SmallRun) -> None:
    p = subprocess.run(
        [str(Path(sys.executable).parent / "pytest-benchmark"), "compare", str(small_run.out)],
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
            # the sentinel re-times the first case at the end: its fp16 graph is reused once more
            "*pytest-trt cache*onnx: 0 built, 1 reused*onnx-fp16-converted: 0 built, 2 reused*"
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
