"""Spreading a benchmark matrix over GPUs: deterministic sharding and merging of the JSON files.

Each GPU gets its own pytest process (pinned with ``CUDA_VISIBLE_DEVICES``) that collects the same
matrix.  On one machine the processes take engine groups from a shared claim directory as they free
up (``--trt-claim-dir``); across machines (CI runners) each keeps a fixed share (``--trt-shard I/N``).  Cases that share an engine (a dynamic profile's
batch sweep) stay together, so each engine is built and timed on one GPU.  Timing never runs under
xdist: pytest-benchmark disables itself there.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_BATCH = re.compile(r"-b\d+(?=-opt\d)")


def group_of(nodeid: str) -> str:
    """Cases of one engine: the node id without its batch, unless the profile is static."""
    if "-dynamic-" in nodeid:
        return _BATCH.sub("-b*", nodeid)
    return nodeid


def assign(nodeids: Sequence[str], n: int) -> dict[str, int]:
    """Balanced, deterministic assignment of node ids to ``n`` shards, engine groups kept whole."""
    if n < 1:
        raise ValueError("shard count must be >= 1")
    groups: dict[str, list[str]] = {}
    for nid in nodeids:
        groups.setdefault(group_of(nid), []).append(nid)
    load = [0] * n
    out = {}
    # Largest groups first, each onto the least loaded shard (ties: lowest index) -- LPT scheduling.
    for g in sorted(groups, key=lambda g: (-len(groups[g]), g)):
        k = min(range(n), key=lambda i: (load[i], i))
        load[k] += len(groups[g])
        for nid in groups[g]:
            out[nid] = k
    return out


def relative_cost(batch: int, precision: str) -> float:
    """A case's time relative to the other cases of its model (only the ranking matters): grows with
    the batch, on top of a fixed part (quality pass, warm-up); 16-bit and 8-bit run faster."""
    return (batch + 16) * (1.0 if precision in ("fp32", "tf32") else 0.75)


def cost_order(units: Sequence[tuple[str, str, float]]) -> list[int]:
    """Reorder a shared queue: ``units`` = (model, engine group, relative cost) per case, in
    collection order; returns the new order as indices.

    Models stay contiguous in collection order and each engine group stays whole.  Inside a model,
    groups are arranged dearest at both ends, cheapest in the middle: processes that walk the queue
    from opposite ends (:func:`queue_order`) then meet on cheap cases, so the last case of the run is
    short and neither GPU waits long for the other.
    """
    blocks: dict[str, dict[str, list[int]]] = {}
    for i, (model, group, _cost) in enumerate(units):
        blocks.setdefault(model, {}).setdefault(group, []).append(i)
    out: list[int] = []
    for groups in blocks.values():
        members = list(groups.values())
        dear = sorted(members, key=lambda g: -sum(units[i][2] for i in g))  # stable: ties keep order
        for g in dear[0::2] + dear[1::2][::-1]:
            out.extend(g)
    return out


def queue_order(length: int, index: int, count: int) -> list[int]:
    """The order in which process ``index`` of ``count`` walks a shared queue of ``length`` cases.

    Processes pair up; the pair's share of the queue is eaten from both ends, one forward from its
    start, one backward from its end, so the two meet in the middle (then help elsewhere, wrapping
    round).  A matrix is collected model by model, so each process keeps to whole models and only
    the one model where a pair meets is set up twice; walking in the same direction from staggered
    starts instead leapfrogs through the last models, setting each up in both processes.
    """
    if not (0 <= index < count):
        raise ValueError(f"process {index} of {count}")
    pairs = (count + 1) // 2
    pair = index // 2
    start = round(pair * length / pairs)
    end = round((pair + 1) * length / pairs)
    if index % 2 == 0:
        return list(range(start, length)) + list(range(start))
    return list(range(end - 1, -1, -1)) + list(range(length - 1, end - 1, -1))


def claim(directory: Path, nodeid: str) -> bool:
    """Take ``nodeid``'s engine group for this process; False if another process has it.

    Processes that share a directory take work as they free up (a shared queue with no server), so a
    GPU that drew the cheap cases does not sit idle while another works through the expensive ones.
    ``O_EXCL`` creation is atomic on local file systems; the file records the owner's pid.
    """
    directory.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(group_of(nodeid).encode()).hexdigest()[:32]
    path = directory / name
    mine = f"{os.getpid()}\n"
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            return path.read_text() == mine  # a later case of a group this process already runs
        except OSError:
            return False
    with os.fdopen(fd, "w") as f:
        f.write(mine)
    return True


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m or not (0 <= int(m.group(1)) < int(m.group(2))):
        raise ValueError(f"--trt-shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/2")
    return int(m.group(1)), int(m.group(2))


def parse_gpus(text: str, available: int | None) -> list[str]:
    """``all`` (every visible GPU), or a comma list of indices/UUIDs."""
    if text == "all":
        if not available:
            raise ValueError("--gpus all: no GPU is visible (NVML found none); pass explicit indices")
        return [str(i) for i in range(available)]
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"--gpus {text!r}: expected 'all' or a comma list such as 0,1")
    if len(set(items)) != len(items):
        raise ValueError(f"--gpus {text!r}: a GPU is listed twice")
    return items


def merge(runs: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """One pytest-benchmark JSON from per-GPU (or per-power-mode) files; machine_info lists each."""
    if not runs:
        raise ValueError("nothing to merge")
    out = copy.deepcopy(dict(runs[0]))
    out["benchmarks"] = []
    cases: list[Any] = []
    shards = []
    for run, label in zip(runs, labels, strict=True):
        for b in run.get("benchmarks", []):
            b = copy.deepcopy(b)
            b.setdefault("extra_info", {})["shard"] = label
            out["benchmarks"].append(b)
        cases.extend((run.get("pytest_trt") or {}).get("cases", []))
        mi = (run.get("machine_info") or {}).get("pytest_trt") or {}
        shards.append(
            {
                "label": label,
                "gpus": mi.get("gpus"),
                "cuda_visible_devices": mi.get("cuda_visible_devices"),
                "jetson": mi.get("jetson"),
                "timeline": (run.get("pytest_trt") or {}).get("timeline"),
            }
        )
    mi = out.setdefault("machine_info", {}).setdefault("pytest_trt", {})
    mi["shards"] = shards
    mi["gpus"] = [g for s in shards for g in (s["gpus"] or [])]
    if "pytest_trt" in out:
        out["pytest_trt"]["cases"] = cases
        out["pytest_trt"].pop("timeline", None)  # one per process: machine_info.pytest_trt.shards
    return out


def xdist_worker_gpu(worker: str | None, visible: str | None, count: int) -> str | None:
    """The GPU a correctness-only xdist worker ``gwK`` should see (K mod GPU count)."""
    if not worker or not worker.startswith("gw") or count < 1:
        return None
    k = int(worker[2:]) % count
    if visible:
        items = [v for v in visible.split(",") if v.strip()]
        return items[k % len(items)] if items else None
    return str(k)


def pin_xdist_worker() -> str | None:
    """Called at configure time in xdist workers, before anything creates a CUDA context."""
    from pytest_trt.hardware import telemetry

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return None
    n = len(telemetry.visible_handles())
    gpu = xdist_worker_gpu(worker, os.environ.get("CUDA_VISIBLE_DEVICES"), n)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    return gpu
