"""Sharding across GPUs and merging (tested on CPU with fake device lists), xdist worker pinning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_trt import shard
from tests.conftest import fast_args, load_json

IDS = (
    [f"b.py::t[m-ort-fp32-dynamic-b{b}-opt3]" for b in (1, 8, 32)]
    + [f"b.py::t[m-ort-fp16-static-b{b}-opt3]" for b in (1, 8)]
    + ["b.py::t[n-ort-fp32-dynamic-b1-opt3]"]
)


def test_assignment_keeps_engine_groups_and_balances() -> None:
    a = shard.assign(IDS, 2)
    dyn = {a[i] for i in IDS[:3]}
    assert len(dyn) == 1  # a dynamic engine's batch sweep stays on one GPU
    loads = [sum(1 for v in a.values() if v == k) for k in range(2)]
    assert sorted(loads) == [3, 3]
    assert shard.assign(list(reversed(IDS)), 2) == a  # deterministic, order-independent


def test_parse_gpus_and_shard() -> None:
    assert shard.parse_gpus("0,1", None) == ["0", "1"]
    assert shard.parse_gpus("all", 3) == ["0", "1", "2"]
    with pytest.raises(ValueError, match="no GPU is visible"):
        shard.parse_gpus("all", 0)
    with pytest.raises(ValueError, match="listed twice"):
        shard.parse_gpus("0,0", 2)
    assert shard.parse_shard("1/4") == (1, 4)
    with pytest.raises(ValueError):
        shard.parse_shard("4/4")


def test_xdist_worker_to_gpu() -> None:
    assert shard.xdist_worker_gpu("gw3", None, 2) == "1"
    assert shard.xdist_worker_gpu("gw2", "4,5,6", 3) == "6"
    assert shard.xdist_worker_gpu(None, None, 2) is None


def test_merge_lists_every_gpu() -> None:
    run = {
        "machine_info": {"pytest_trt": {"gpus": [{"name": "A"}]}},
        "benchmarks": [{"name": "x", "extra_info": {}}],
        "pytest_trt": {"schema": "pytest-trt/1", "cases": [{"id": "x"}]},
    }
    run2 = {
        "machine_info": {"pytest_trt": {"gpus": [{"name": "B"}]}},
        "benchmarks": [{"name": "y", "extra_info": {}}],
        "pytest_trt": {"schema": "pytest-trt/1", "cases": [{"id": "y"}]},
    }
    m = shard.merge([run, run2], ["gpu0", "gpu1"])
    assert [g["name"] for g in m["machine_info"]["pytest_trt"]["gpus"]] == ["A", "B"]
    assert [b["extra_info"]["shard"] for b in m["benchmarks"]] == ["gpu0", "gpu1"]
    assert len(m["pytest_trt"]["cases"]) == 2


def test_pytest_trt_run_on_two_fake_gpus(tmp_path: Path) -> None:
    (tmp_path / "test_b.py").write_text("""
import pytest
@pytest.mark.trt_matrix(models=["tinycnn"], backends=["onnxruntime"], precisions=["fp32", "int8"], batches=[1, 2])
def test_b(trt_run):
    trt_run.run()
""")
    out = tmp_path / "merged.json"
    cmd = [
        sys.executable,
        "-m",
        "pytest_trt.cli",
        "run",
        "--gpus",
        "0,1",
        "--out",
        str(out),
        "--workdir",
        str(tmp_path / "w"),
        "--",
        str(tmp_path / "test_b.py"),
        "-q",
        *fast_args(tmp_path / "cache"),
    ]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (
        "shard 0/2 on CUDA_VISIBLE_DEVICES=0" in p.stdout
        and "shard 1/2 on CUDA_VISIBLE_DEVICES=1" in p.stdout
    )
    merged = load_json(out)
    names = sorted(b["name"] for b in merged["benchmarks"])
    assert len(names) == 4 and len(set(names)) == 4  # every case exactly once
    shards = {b["extra_info"]["shard"] for b in merged["benchmarks"]}
    assert shards <= {"run:gpu0", "run:gpu1"}  # who takes what is first come, first served
    by_shard = {
        s: {b["extra_info"]["precision"] for b in merged["benchmarks"] if b["extra_info"]["shard"] == s}
        for s in shards
    }
    assert all(len(v) == 1 for v in by_shard.values())  # each engine (precision) on one shard only
    assert [s["cuda_visible_devices"] for s in merged["machine_info"]["pytest_trt"]["shards"]] == ["0", "1"]


def test_claims_are_per_engine_group_and_first_come(tmp_path: Path) -> None:
    d = tmp_path / "claims"
    static = "b.py::t[m-torch-fp16-static-b1-opt3]"
    dyn1, dyn8 = "b.py::t[m-trt-fp16-dynamic-b1-opt3]", "b.py::t[m-trt-fp16-dynamic-b8-opt3]"
    assert shard.claim(d, dyn1) and shard.claim(d, dyn8)  # the same engine: this process keeps it
    assert shard.claim(d, static)
    # another process's claim: the file names its pid
    other = "b.py::t[m-trt-int8-dynamic-b1-opt3]"
    import hashlib

    (d / hashlib.sha256(shard.group_of(other).encode()).hexdigest()[:32]).write_text("1\n")
    assert not shard.claim(d, other) and not shard.claim(d, other.replace("b1", "b4"))


def test_shard_option_deselects(pytester: pytest.Pytester, bench_file: Path, shared_cache: Path) -> None:
    both = []
    for i in range(2):
        r = pytester.runpytest(
            *fast_args(shared_cache, "--trt-backend=onnxruntime"), "--co", "-q", f"--trt-shard={i}/2"
        )
        both.append({ln for ln in r.stdout.lines if "::" in ln})
    assert both[0] and both[1] and not (both[0] & both[1])


def test_correctness_only_xdist_run_writes_one_record_file_per_worker(
    pytester: pytest.Pytester, bench_file: Path, shared_cache: Path
) -> None:
    out = pytester.path / "rec.json"
    r = pytester.runpytest_subprocess(
        *fast_args(shared_cache, "--trt-backend=onnxruntime", "--trt-precision=fp32"),
        "-n",
        "2",
        "--benchmark-disable",
        f"--trt-json={out}",
    )
    r.assert_outcomes(passed=2)
    files = sorted(p.name for p in pytester.path.glob("rec.gw*.json"))
    assert files == ["rec.gw0.json", "rec.gw1.json"] or len(files) == 1  # one worker may get both cases
    ids = [c["id"] for f in files for c in load_json(pytester.path / f)["cases"]]
    assert sorted(ids) == [
        "tinycnn-onnxruntime-fp32-dynamic-b1-opt3",
        "tinycnn-onnxruntime-fp32-dynamic-b8-opt3",
    ]


def test_launcher_starts_without_torch_or_scipy() -> None:
    """`pytest-trt run` must not spend seconds importing what only the GPU processes need."""
    code = (
        "import sys, pytest_trt.cli; "
        "heavy = sorted(m for m in ('torch', 'scipy', 'onnx', 'matplotlib') if m in sys.modules); "
        "print(','.join(heavy))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert p.stdout.strip() == "", f"pytest_trt.cli imports {p.stdout.strip()}"
