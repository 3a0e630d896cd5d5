"""Fault injection, in one place: bad input, corrupt caches, concurrency, crashes, OOM, security.

Each test names the fault it injects; every one must end in a clear message or a recovered state,
never a crashed session, a trusted stale artifact, a partial file or a lost result.
"""

from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import signal
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from pytest_trt.cache import ArtifactCache, CacheError, CacheWarning
from pytest_trt.engines.onnxrt.backend import OnnxRuntimeBackend
from pytest_trt.engines.protocol import BuildContext, BuildFailed, BuildSpec, Device
from pytest_trt.gate.runs import ResultsError, load_run
from pytest_trt.models import zoo
from pytest_trt.models.datasets import DatasetError, load_image_folder, synthetic
from pytest_trt.models.export import OnnxModelError, load_checked, onnx_model_from_artifact
from pytest_trt.quality import gates, metrics
from tests.conftest import fast_args, load_json

# -- ONNX input -----------------------------------------------------------------------------------


def test_onnx_missing_truncated_not_onnx(tmp_path: Path) -> None:
    with pytest.raises(OnnxModelError, match=r"does not exist; export the model first"):
        load_checked(tmp_path / "nope.onnx")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(OnnxModelError, match=r"empty.onnx is empty"):
        load_checked(empty)
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a protobuf " * 20)
    with pytest.raises(OnnxModelError, match=r"notes.onnx cannot be parsed|notes.onnx has an empty graph"):
        load_checked(text)
    good = _identity_model(tmp_path / "good.onnx")
    blob = good.read_bytes()
    trunc = tmp_path / "trunc.onnx"
    trunc.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(OnnxModelError, match=r"trunc.onnx"):
        load_checked(trunc)


def _identity_model(path: Path, op: str = "Relu", domain: str = "") -> Path:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4])
    node = helper.make_node(op, ["input"], ["output"], domain=domain)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=opsets)
    model.ir_version = 8  # what every onnxruntime in use reads
    onnx.save(model, str(path))
    return path


def test_operator_the_backend_lacks(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "c")
    path = _identity_model(tmp_path / "fancy.onnx", op="FancyOp", domain="com.example")
    art = cache.get_or_build("onnx", {"f": "fancy"}, ".onnx", _write(path.read_bytes()))
    model = onnx_model_from_artifact(art, 17)
    ctx = BuildContext(
        cache,
        BuildSpec(),
        zoo.get("tinycnn"),
        model,
        Device("cpu"),
        lambda: torch.nn.Identity(),
        lambda: synthetic((4,), 4, 0),
    )
    with pytest.raises(BuildFailed, match=r"onnxruntime could not load .*\.onnx .*FancyOp"):
        OnnxRuntimeBackend().build(ctx)


# -- outputs ---------------------------------------------------------------------------------------


def test_nan_and_inf_outputs_fail_the_gate_with_counts() -> None:
    base = np.ones((4, 10))
    out = base.copy()
    out[0, 0], out[1, 1] = np.nan, np.inf
    q = metrics.quality("classification", base, out)
    assert q["errors"]["nan"] == 1 and q["errors"]["inf"] == 1
    res = gates.evaluate(gates.gates_for("int8"), q, trained=False, base=base, out=out)
    msg = gates.failure_message("case", res)
    assert msg and "nan_or_inf" in msg and "(1 NaN, 1 Inf in the output)" in msg


# -- the cache -------------------------------------------------------------------------------------


def _write(content: bytes):  # type: ignore[no-untyped-def]
    def build(tmp: Path) -> dict[str, str]:
        tmp.write_bytes(content)
        return {"note": "x"}

    return build


@pytest.mark.parametrize("damage", ["truncate", "flip", "drop-meta", "garbage-meta"])
def test_corrupt_cached_artifact_is_rebuilt_with_a_warning(tmp_path: Path, damage: str) -> None:
    cache = ArtifactCache(tmp_path)
    a = cache.get_or_build("onnx", {"k": 1}, ".onnx", _write(b"A" * 1000))
    meta = cache.meta_path(a.path)
    if damage == "truncate":
        a.path.write_bytes(b"A" * 10)
    elif damage == "flip":
        a.path.write_bytes(b"B" * 1000)
    elif damage == "drop-meta":
        meta.unlink()
    else:
        meta.write_text("{not json")
    fresh = ArtifactCache(tmp_path)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        b = fresh.get_or_build("onnx", {"k": 1}, ".onnx", _write(b"A" * 1000))
    assert b.built and b.path.read_bytes() == b"A" * 1000
    if damage != "drop-meta":  # an artifact without its sidecar is simply untrusted and rebuilt
        assert any(
            issubclass(x.category, CacheWarning) and "discarding cached artifact" in str(x.message) for x in w
        )


def test_a_build_being_published_is_not_deleted_by_an_unlocked_look(tmp_path: Path) -> None:
    """Another process has moved its artifact into place and holds the lock while it writes the sidecar:
    a reader that looks without the lock must wait for it, not delete the fresh file (seen once in CI:
    four processes on one configuration, one of them lost the artifact it had just built)."""
    cache = ArtifactCache(tmp_path)
    a = cache.get_or_build("onnx", {"k": 2}, ".onnx", _write(b"A" * 100))
    sidecar = cache.meta_path(a.path).read_text()
    cache.meta_path(a.path).unlink()  # the window between publishing the artifact and its sidecar
    assert cache.verify(a.path, discard=False) is None and a.path.exists()
    with cache.lock(a.path):  # the publisher finishes while holding the lock
        cache.meta_path(a.path).write_text(sidecar)
    b = ArtifactCache(tmp_path).get_or_build("onnx", {"k": 2}, ".onnx", _write(b"B" * 100))
    assert not b.built and b.path.read_bytes() == b"A" * 100


def test_plan_from_another_version_or_gpu_is_never_loaded(tmp_path: Path) -> None:
    # Keys hold TensorRT version and GPU: a plan built elsewhere has another key, so it is not found.
    cache = ArtifactCache(tmp_path)
    parts = {"onnx": "abc", "trt_version": "10.13.0", "gpu": "NVIDIA H100", "compute_capability": "9.0"}
    cache.get_or_build("trt-plan", parts, ".plan", _write(b"PLAN-10.13"))
    other = cache.get_or_build("trt-plan", {**parts, "trt_version": "11.4.0"}, ".plan", _write(b"PLAN-11.4"))
    gpu = cache.get_or_build(
        "trt-plan",
        {**parts, "gpu": "NVIDIA A100", "compute_capability": "8.0"},
        ".plan",
        _write(b"PLAN-A100"),
    )
    assert other.built and gpu.built and other.path.read_bytes() == b"PLAN-11.4"


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root ignores directory permissions; covered by the ENOSPC test"
)
def test_read_only_cache_dir_falls_back_with_warning(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    with pytest.warns(CacheWarning, match="not writable.*temporary cache"):
        cache = ArtifactCache(ro)
    assert cache.root != ro
    with pytest.raises(CacheError, match="--trt-cache-dir"):
        ArtifactCache(ro, fallback_to_temp=False)


def test_unwritable_cache_path_falls_back_with_warning(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    with pytest.warns(CacheWarning, match="not writable.*temporary cache"):
        cache = ArtifactCache(blocker / "cache")
    assert cache.root.is_dir()
    with pytest.raises(CacheError, match="pass --trt-cache-dir with a directory of your own"):
        ArtifactCache(blocker / "cache", fallback_to_temp=False)


def test_full_disk_is_a_clear_error_and_leaves_no_partial_file(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)

    def build(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(CacheError, match="is full while writing"):
        cache.get_or_build("onnx", {"k": 2}, ".onnx", build)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert leftovers == []


def test_cache_directory_is_private(tmp_path: Path) -> None:
    ArtifactCache(tmp_path / "new-cache")
    assert stat.S_IMODE((tmp_path / "new-cache").stat().st_mode) == 0o700


def _racer(root: str, counter: str, start: float) -> None:
    while time.time() < start:
        time.sleep(0.001)
    cache = ArtifactCache(root)

    def build(tmp: Path) -> None:
        with open(counter, "a") as f:
            f.write("built\n")
        time.sleep(0.5)  # a slow build, so the others really wait on the lock
        tmp.write_bytes(b"artifact")

    art = cache.get_or_build("onnx", {"race": 1}, ".onnx", build)
    assert art.path.read_bytes() == b"artifact"


def test_concurrent_processes_build_once(tmp_path: Path) -> None:
    counter = tmp_path / "count.txt"
    start = time.time() + 1.0
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_racer, args=(str(tmp_path / "c"), str(counter), start)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert counter.read_text().count("built") == 1


def _killed_builder(root: str) -> None:
    cache = ArtifactCache(root)

    def build(tmp: Path) -> None:
        tmp.write_bytes(b"half-written")
        os.kill(os.getpid(), signal.SIGKILL)  # the process dies mid-build, holding the lock

    cache.get_or_build("trt-plan", {"k": "killed"}, ".plan", build)


def test_killed_build_is_recovered_by_the_next_run(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=_killed_builder, args=(str(tmp_path),))
    p.start()
    p.join(60)
    assert p.exitcode == -signal.SIGKILL
    assert list(tmp_path.rglob(".*.tmp")), "the dead process should have left its partial file"
    cache = ArtifactCache(tmp_path)
    art = cache.get_or_build(
        "trt-plan",
        {"k": "killed"},
        ".plan",
        _write(b"whole"),
    )
    assert art.built and art.path.read_bytes() == b"whole"
    assert not list(tmp_path.rglob(".*.tmp")), "partial files of the dead build are swept"


def test_four_pytest_processes_on_one_configuration_build_once(tmp_path: Path) -> None:
    (tmp_path / "test_same.py").write_text("""
import pytest
@pytest.mark.trt_matrix(models=["tinycnn"], backends=["onnxruntime"], precisions=["int8"], batches=[2])
def test_same(trt_run):
    trt_run.run()
""")
    cache = tmp_path / "shared-cache"
    procs = []
    for i in range(4):
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            str(tmp_path / "test_same.py"),
            *fast_args(cache),
            f"--trt-json={tmp_path / f'r{i}.json'}",
            "-p",
            "no:randomly",
        ]
        procs.append(
            subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    built = {"onnx": 0, "onnx-qdq-int8": 0}
    for i in range(4):
        summary = load_json(tmp_path / f"r{i}.json")["cache"]
        for kind in built:
            part = next(s for s in summary.split("; ") if s.startswith(kind + ":"))
            built[kind] += int(part.split(":")[1].split("built")[0])
    assert built == {"onnx": 1, "onnx-qdq-int8": 1}, built


# -- whole-session faults --------------------------------------------------------------------------


def test_oom_and_build_failure_are_results_and_the_session_goes_on(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makeconftest("""
from pytest_trt.engines.onnxrt.backend import OnnxRuntimeBackend

class ExplodingBackend(OnnxRuntimeBackend):
    name = "exploding"
    def build(self, ctx):
        if ctx.spec.precision == "fp16":
            raise MemoryError("simulated out of memory while building")
        raise RuntimeError("simulated builder crash")

def pytest_trt_register_backends(register):
    register("exploding", "conftest:ExplodingBackend")
""")
    pytester.makepyfile(
        test_x="""
import pytest
@pytest.mark.trt_matrix(models=["tinycnn"], backends=["exploding", "onnxruntime"], precisions=["fp16", "fp32"],
                        batches=[2])
def test_x(trt_run):
    trt_run.run()
"""
    )
    out = pytester.path / "x.json"
    r = pytester.runpytest(
        *fast_args(tmp_path / "c"), "--trt-backend=exploding,onnxruntime", f"--trt-json={out}"
    )
    r.assert_outcomes(passed=2, failed=2)
    cases = {c["id"]: c for c in load_json(out)["cases"]}
    assert cases["tinycnn-exploding-fp16-dynamic-b2-opt3"]["status"] == "oom"
    assert "simulated out of memory" in cases["tinycnn-exploding-fp16-dynamic-b2-opt3"]["message"]
    assert cases["tinycnn-exploding-fp32-dynamic-b2-opt3"]["status"] == "build_failed"
    assert cases["tinycnn-onnxruntime-fp32-dynamic-b2-opt3"]["status"] == "ok"
    r = pytester.runpytest(
        *fast_args(tmp_path / "c"), "--trt-backend=exploding", "--trt-on-build-failure=skip"
    )
    r.assert_outcomes(skipped=2)


def test_dataset_missing_empty_unreadable(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such directory"):
        load_image_folder(tmp_path / "missing", 32, 4)
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images found"):
        load_image_folder(tmp_path / "empty", 32, 4)
    bad = tmp_path / "bad" / "dog"
    bad.mkdir(parents=True)
    (bad / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DatasetError, match=r"cannot read image .*broken.jpg.*remove or replace it"):
        load_image_folder(tmp_path / "bad", 32, 4)


def test_results_from_another_tool(tmp_path: Path) -> None:
    p = tmp_path / "other.json"
    p.write_text(json.dumps({"tool": "asv", "results": {}}))
    with pytest.raises(ResultsError, match="not a pytest-benchmark JSON file"):
        load_run(p)


def test_weights_are_loaded_without_unpickling_objects(tmp_path: Path) -> None:
    spec = zoo.get("tinycnn")
    model = spec.factory()
    ok = tmp_path / "ok.pt"
    torch.save(model.state_dict(), ok)
    _, src = zoo.load_model(spec, f"file:{ok}")
    assert src.startswith("file:ok.pt@")
    evil = tmp_path / "evil.pt"
    torch.save({"payload": _Evil()}, evil)
    with pytest.raises(zoo.WeightsUnavailable, match="cannot load a state dict"):
        zoo.load_model(spec, f"file:{evil}")
    with pytest.raises(zoo.WeightsUnavailable, match="no such file"):
        zoo.load_model(spec, f"file:{tmp_path / 'missing.pt'}")


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo unpickled > /dev/null",))


def test_version_compatible_plans_need_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_trt.engines.tensorrt import backend as tb
    from pytest_trt.engines.tensorrt import versions
    from tests.trt_double import make_double

    monkeypatch.setattr(versions, "trt", make_double("10.13.0"))
    monkeypatch.setattr(versions, "load_tensorrt", lambda name="tensorrt": versions.trt)
    be = tb.TensorRTBackend()
    gpu = Device("cuda", 0, "fake")
    reason = be.unsupported(BuildSpec(version_compatible=True), zoo.get("tinycnn"), gpu)
    assert reason and "--trt-allow-host-code" in reason
    assert (
        be.unsupported(BuildSpec(version_compatible=True, allow_host_code=True), zoo.get("tinycnn"), gpu)
        is None
    )


def test_unavailable_weights_are_a_recorded_failure(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(
        test_w="""
import pytest
@pytest.mark.trt_matrix(models=["tinycnn"], backends=["onnxruntime"], precisions=["fp32"], batches=[1])
def test_w(trt_run):
    trt_run.run()
"""
    )
    out = pytester.path / "w.json"
    r = pytester.runpytest(
        *fast_args(tmp_path / "c"), f"--trt-weights=file:{tmp_path / 'none.pt'}", f"--trt-json={out}"
    )
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*build_failed: --trt-weights file:*none.pt: no such file*"])
    assert load_json(out)["cases"][0]["status"] == "build_failed"
