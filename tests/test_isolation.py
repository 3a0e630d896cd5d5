"""Isolated timing: jobs run in workers forked from a server that ran nothing; a session records where
each case was timed, and its sentinel marks a run whose first case drifted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_trt.hardware.device import Device
from pytest_trt.measure import timing
from pytest_trt.measure.isolation import ForkServer, WorkerError
from pytest_trt.plugin.timed import Sentinel, mark_invalid
from tests.conftest import fast_args, load_json

STATE: list[int] = []  # what a worker's earlier jobs left behind


def _job(kind: str) -> Any:
    if kind == "pid":
        return os.getpid()
    if kind == "count":
        STATE.append(1)
        return len(STATE)
    if kind == "raise":
        raise ValueError("a job that fails")
    if kind == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError(kind)


@pytest.fixture
def server() -> Any:
    s = ForkServer(_job)
    yield s
    s.close()


def test_a_job_runs_in_a_worker_process_not_in_the_session(server: ForkServer) -> None:
    worker = server.open()
    pid = worker.run("pid")
    worker.close()
    assert pid not in (os.getpid(), server.pid)


def test_a_worker_keeps_its_state_between_jobs_and_a_new_worker_starts_clean(server: ForkServer) -> None:
    first = server.open()
    assert [first.run("count"), first.run("count")] == [1, 2]  # the batch sizes of one engine share it
    first.close()
    second = server.open()
    assert second.run("count") == 1  # nothing of the first worker's work reached the second
    second.close()
    assert STATE == []  # nor the session itself


def test_a_failing_job_carries_the_workers_traceback_and_the_worker_goes_on(server: ForkServer) -> None:
    worker = server.open()
    with pytest.raises(WorkerError, match="a job that fails"):
        worker.run("raise")
    assert worker.run("count") == 1
    worker.close()


def test_a_worker_that_dies_is_an_error_not_a_hang(server: ForkServer) -> None:
    worker = server.open()
    with pytest.raises(WorkerError, match="killed by signal 9"):
        worker.run("die")
    replacement = server.open()  # the server goes on serving
    assert replacement.run("count") == 1
    replacement.close()


def _measurement(median_s: float, spread: float) -> timing.Measurement:
    return timing.Measurement(model_s=[median_s * (1 + spread * ((i % 5) - 2) / 2) for i in range(50)])


class _Case:
    id = "m-torch-fp16-b1"


def test_the_sentinel_passes_a_run_within_its_noise() -> None:
    sentinel = Sentinel(case=_Case(), req=None, device=Device("cuda"), first=_measurement(1e-3, 0.001))  # type: ignore[arg-type]
    assert sentinel.check(_measurement(1.003e-3, 0.001), valid_ci=0.01)["ok"] is True


def test_the_sentinel_fails_a_drift_past_the_noise_and_marks_results_invalid() -> None:
    sentinel = Sentinel(case=_Case(), req=None, device=Device("cuda"), first=_measurement(1e-3, 0.001))  # type: ignore[arg-type]
    drift = sentinel.check(_measurement(1.13e-3, 0.001), valid_ci=0.01)
    assert drift["ok"] is False and drift["drift"] == pytest.approx(0.13, abs=0.002)
    extra_info: dict[str, Any] = {"valid": True, "validity": {"valid": True, "reasons": []}}
    mark_invalid(extra_info, drift)
    assert extra_info["valid"] is False and extra_info["validity"]["valid"] is False
    assert "sentinel: m-torch-fp16-b1" in extra_info["validity"]["reasons"][0]


BENCH = """
import pytest

@pytest.mark.trt_matrix(models=["tinycnn"], backends=["onnxruntime", "torch"], precisions=["fp32"],
                        batches=[1, 2])
def test_tiny(trt_run):
    trt_run.run()
"""


# Which processes made an evaluation set (the session's, or a timing worker making it again).
SAMPLES_LOG = """
import os
from pytest_trt.plugin.session import TrtSession

_made = TrtSession.eval_samples

def _logged(self, case):
    with open(os.environ["EVAL_SAMPLES_LOG"], "a") as f:
        f.write(f"{os.getpid()}\\n")
    return _made(self, case)

TrtSession.eval_samples = _logged
"""


def _session(tmp_path: Path, cache: Path, isolate: str) -> dict[str, Any]:
    (tmp_path / "test_iso.py").write_text(BENCH)
    (tmp_path / "conftest.py").write_text(SAMPLES_LOG)
    out = tmp_path / f"{isolate}.json"
    log = tmp_path / "eval_samples.log"
    args = [*fast_args(cache, f"--trt-isolate={isolate}", f"--trt-json={out}"), "--trt-rounds=10"]
    p = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_iso.py"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "EVAL_SAMPLES_LOG": str(log)},
    )
    assert p.returncode == 0, p.stdout[-3000:]
    data = load_json(out)
    data["stdout"] = p.stdout
    data["made_samples"] = {int(line) for line in log.read_text().split()} if log.exists() else set()
    return data


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> dict[str, Any]:
    return _session(tmp_path_factory.mktemp("iso-on"), shared_cache, "on")


def test_isolated_cases_say_their_context_ran_only_their_own_engine(isolated: dict[str, Any]) -> None:
    contexts = {c["id"]: c["extra_info"]["timing"]["context"] for c in isolated["cases"]}
    for cid, ctx in contexts.items():
        assert ctx["mode"] == "fresh", cid
        engine = cid.rsplit("-b", 1)[0]  # the batch sizes of one engine share its worker
        assert all(prior.rsplit("-b", 1)[0] == engine for prior in ctx["ran_before"]), (cid, ctx)
    pids = {ctx["worker_pid"] for ctx in contexts.values()}
    assert len(pids) == 2  # one worker per engine (onnxruntime, torch)


def test_a_worker_times_the_batch_the_session_sent_without_making_the_evaluation_set_again(
    isolated: dict[str, Any],
) -> None:
    workers = {c["extra_info"]["timing"]["context"]["worker_pid"] for c in isolated["cases"]}
    assert isolated["made_samples"], "the session made its evaluation sets"
    assert not workers & isolated["made_samples"]


def test_an_isolated_session_times_its_first_case_again_and_says_so(isolated: dict[str, Any]) -> None:
    sentinel = isolated["sentinel"]
    assert sentinel["case"] == isolated["timeline"]["cases"][0]["nodeid"].split("[")[1].rstrip("]")
    assert sentinel["first_median_ms"] > 0 and sentinel["last_median_ms"] > 0
    assert "pytest-trt sentinel:" in isolated["stdout"] and "isolated" in isolated["stdout"]
    # host engines: their figure moves between processes on its own, so their sentinel marks nothing
    assert sentinel["applies"] is False
    for case in isolated["cases"]:
        assert not any(r.startswith("sentinel:") for r in case["extra_info"]["validity"]["reasons"])


def test_a_shared_session_names_what_ran_before_each_case(tmp_path: Path, shared_cache: Path) -> None:
    data = _session(tmp_path, shared_cache, "off")
    order = [c["id"] for c in data["cases"] if c["status"] == "ok"]
    last = next(c for c in data["cases"] if c["id"] == order[-1])["extra_info"]["timing"]["context"]
    assert last["mode"] == "shared" and last["ran_before_count"] == len(order) - 1
    assert "shared" in data["stdout"] or "in this process" in data["stdout"]


def test_a_worker_stuck_in_a_thread_pool_the_session_started_is_detected_not_waited_for() -> None:
    """torch's OpenMP pool started in this process before the fork: a worker's parallel CPU operation
    would hang for ever.  The health check ends it within its alarm, and the session can time itself."""
    import time

    import torch

    from pytest_trt.plugin import timed

    torch.randn(1 << 20).exp_()  # start the pool here, as an earlier in-process run would have
    server = ForkServer(timed._serve)
    try:
        worker = server.open()
        t0 = time.perf_counter()
        with pytest.raises(WorkerError, match="signal 14"):
            worker.run("health")
        assert time.perf_counter() - t0 < timed.HEALTH_SECONDS + 5
    finally:
        server.close()


def test_a_process_without_a_cuda_context_has_no_cache_to_release() -> None:
    import torch

    from pytest_trt.hardware.device import release_cuda_cache

    assert not torch.cuda.is_initialized()  # this test process never starts CUDA on the CPU
    assert release_cuda_cache() is None
