"""Sharding across GPUs and merging (tested on CPU with fake device lists), xdist worker pinning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_trt.run import shard
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


@pytest.mark.parametrize("how", ["forked", "started"])
def test_pytest_trt_run_on_two_fake_gpus(tmp_path: Path, how: str) -> None:
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
        *(["--spawn"] if how == "started" else []),
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
        f"shard 0/2 on CUDA_VISIBLE_DEVICES=0 ({how})" in p.stdout
        and f"shard 1/2 on CUDA_VISIBLE_DEVICES=1 ({how})" in p.stdout
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
    balance = merged["machine_info"]["pytest_trt"]["balance"]
    assert [r["label"] for r in balance] == ["run:gpu0", "run:gpu1"] and "idle at the end" in p.stdout
    assert all(r["startup_s"] > 0 and r["cases_s"] > 0 for r in balance)
    assert min(r["idle_at_end_s"] for r in balance) == 0.0  # the last to finish waited for nobody
    # each case ran in exactly one process's timeline
    ran = [
        c["nodeid"] for s in merged["machine_info"]["pytest_trt"]["shards"] for c in s["timeline"]["cases"]
    ]
    assert len(ran) == len(set(ran)) and sum(r["cases"] for r in balance) == len(ran)
    assert sum("test_b[" in n for n in ran) == 4


def test_pytest_trt_run_exit_code_and_output_survive_the_skipped_teardown(tmp_path: Path) -> None:
    """The command ends with os._exit once torch is imported: the failing sub-run's code and the
    launcher's last lines must still come out."""
    (tmp_path / "test_f.py").write_text(
        "def test_timed(benchmark):\n    benchmark(sum, [1, 2])\n\ndef test_f():\n    assert 1 == 2\n"
    )
    cmd = [sys.executable, "-m", "pytest_trt.cli", "run", "--gpus", "0", "--out", str(tmp_path / "m.json")]
    cmd += [
        "--workdir",
        str(tmp_path / "w"),
        "--",
        str(tmp_path / "test_f.py"),
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # output block-buffered, as in CI
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "1 failed, 1 passed" in p.stdout
    assert p.stdout.rstrip().splitlines()[-1].startswith("[pytest-trt run] merged 1 benchmarks from 1 runs")
    assert len(load_json(tmp_path / "m.json")["benchmarks"]) == 1


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


def test_queue_orders_are_permutations_and_pairs_meet_in_the_middle() -> None:
    for count in range(1, 6):
        for length in range(13):
            for index in range(count):
                assert sorted(shard.queue_order(length, index, count)) == list(range(length))
    assert shard.queue_order(6, 0, 2) == [0, 1, 2, 3, 4, 5]
    assert shard.queue_order(6, 1, 2) == [5, 4, 3, 2, 1, 0]
    # four processes: two pairs, each eating its half from both ends, then helping the other half
    assert shard.queue_order(8, 2, 4)[:4] == [4, 5, 6, 7] and shard.queue_order(8, 3, 4)[:4] == [7, 6, 5, 4]
    with pytest.raises(ValueError):
        shard.queue_order(4, 2, 2)


# Seconds per case of the 40-case torch matrix on one H200 (model by model, fp32 then fp16, batch 1,
# 16, 64, 128, 256), with each model's set-up (construction, baseline) split out: measured, round 6.
MODELS = {"mobilenet_v2": 1.0, "resnet18": 0.8, "resnet50": 0.8, "resnet101": 1.8}
CASE_S = {
    "mobilenet_v2": [0.9, 0.8, 1.3, 1.9, 2.9, 2.0, 2.0, 2.4, 2.6, 2.9],
    "resnet18": [0.8, 0.8, 1.1, 1.5, 2.1, 1.0, 0.8, 0.9, 1.2, 1.8],
    "resnet50": [1.0, 1.0, 1.9, 2.8, 4.9, 1.5, 1.1, 1.7, 2.4, 3.7],
    "resnet101": [1.3, 1.3, 2.5, 3.9, 6.9, 1.7, 1.2, 1.9, 3.1, 5.2],
}


def _simulate(orders: list[list[int]], models: list[str], cost: list[float]) -> tuple[float, int]:
    """First come, first served claims: (makespan, models set up in more than one process)."""
    clock = [0.0] * len(orders)
    pos = [0] * len(orders)
    loaded: list[set[str]] = [set() for _ in orders]
    claimed: set[int] = set()
    busy = set(range(len(orders)))
    while busy:
        i = min(busy, key=lambda k: clock[k])
        while pos[i] < len(cost) and orders[i][pos[i]] in claimed:
            pos[i] += 1
        if pos[i] == len(cost):
            busy.discard(i)
            continue
        j = orders[i][pos[i]]
        claimed.add(j)
        clock[i] += cost[j] + (0.0 if models[j] in loaded[i] else MODELS[models[j]])
        loaded[i].add(models[j])
    shared = sum(1 for m in MODELS if sum(m in s for s in loaded) > 1)
    return max(clock), shared


def test_two_processes_split_the_measured_matrix_evenly_with_one_shared_model() -> None:
    models = [m for m in MODELS for _ in CASE_S[m]]
    cost = [c for m in MODELS for c in CASE_S[m]]
    batches = [1, 16, 64, 128, 256] * 8
    precisions = (["fp32"] * 5 + ["fp16"] * 5) * 4
    units = [
        (m, f"{m}-{p}-b{b}", shard.relative_cost(b, p))
        for m, b, p in zip(models, batches, precisions, strict=True)
    ]
    perm = shard.cost_order(units)
    assert sorted(perm) == list(range(40))
    assert [models[i] for i in perm] == models  # models stay contiguous, in collection order
    q_models, q_cost = [models[i] for i in perm], [cost[i] for i in perm]

    one, _ = _simulate([list(range(40))], models, cost)
    ideal = (one + max(MODELS.values())) / 2  # half the work, one model set up twice
    paired, shared = _simulate([shard.queue_order(40, i, 2) for i in range(2)], q_models, q_cost)
    unsorted, _ = _simulate([shard.queue_order(40, i, 2) for i in range(2)], models, cost)
    rotated = [list(range(20, 40)) + list(range(20)), list(range(40))]  # the former staggered start
    rot_span, _ = _simulate(rotated, models, cost)
    assert shared == 1
    assert paired <= ideal + 0.5 < unsorted < rot_span  # cheap cases meet in the middle: no long tail


def test_cost_order_keeps_engine_groups_whole() -> None:
    units = [("m", "m-dyn", 1.0), ("m", "s1", 5.0), ("m", "m-dyn", 1.0), ("m", "s2", 3.0), ("n", "x", 1.0)]
    perm = shard.cost_order(units)
    groups = [units[i][1] for i in perm]
    assert groups == ["s1", "m-dyn", "m-dyn", "s2", "x"]  # dearest first, second dearest last
