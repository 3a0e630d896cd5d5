"""``pytest-trt run``: one pytest process per GPU (and per Jetson power mode), merged into one JSON.

The processes share one work queue (``--trt-claim-dir``): each takes the next unclaimed engine group as
it frees up.  Every second spent here before the processes start is wall-clock time that no GPU
works: importing this module loads nothing heavy, and on Linux the launcher imports torch once and
forks the processes (without ever starting CUDA itself) instead of having each import it again.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from pytest_trt.gate.runs import load_run, write_json
from pytest_trt.run import shard, wall


def gpu_count() -> int:
    from pytest_trt.hardware import telemetry

    try:
        return len(telemetry.visible_handles())
    finally:
        telemetry.release_nvml()  # the GPU processes may be forked from this one: no NVML session to share


def can_fork() -> bool:
    """Forking after ``import torch`` (never after CUDA starts) is safe on Linux; elsewhere spawn."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def preload() -> None:
    """Import, once, what every GPU process imports first (seconds for torch), then fork them: they
    start without importing it again, all at once, against each other."""
    import pytest  # noqa: F401
    import torch  # noqa: F401

    # The children inherit these objects copy-on-write; a garbage collection in a child would write to
    # every one of them (GC headers) and copy most of the launcher's heap page by page, in every child
    # at once.  Frozen objects are left out of collections.
    gc.freeze()


class _Forked:
    """A forked pytest process; ``wait`` as ``subprocess.Popen.wait``."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], threads: int | None) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:
            _child(argv, env, threads)  # never returns

    def wait(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


def _child(argv: Sequence[str], env: Mapping[str, str], threads: int | None) -> NoReturn:
    code = 3  # pytest's "internal error" if anything below raises
    try:
        os.environ.clear()
        os.environ.update(env)  # CUDA_VISIBLE_DEVICES before anything starts CUDA
        # pytest rewrites the asserts of its plugins' modules as it imports them: let it import ours.
        for name in [m for m in sys.modules if m == "pytest_trt" or m.startswith("pytest_trt.")]:
            del sys.modules[name]
        import pytest
        import torch

        if threads is not None:  # OpenMP read its environment when torch loaded, in the launcher
            torch.set_num_threads(threads)
        code = int(pytest.main(list(argv)))
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        # Skip interpreter teardown (about a second with torch and a CUDA context): the results are
        # written and closed by now, and the launcher is waiting for them.
        os._exit(code)


def run_subsets(
    pytest_args: Sequence[str],
    gpus: Sequence[str | None],
    extra: Sequence[str],
    workdir: Path,
    label: str,
    fork: bool = False,
) -> tuple[list[dict[str, object]], list[str], int]:
    """Start one pytest per GPU (in parallel) sharing one work queue; return their JSON and worst code."""
    procs: list[tuple[subprocess.Popen[bytes] | _Forked, Path, str | None]] = []
    n = len(gpus)
    # Each process would otherwise start one OpenMP/MKL thread per core: n processes oversubscribe the
    # host n times, and spinning OpenMP threads then slow every CPU step (model set-up, quality checks).
    threads = max(1, (os.cpu_count() or 1) // max(n, 1))
    for i, gpu in enumerate(gpus):
        env = dict(os.environ)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        if n > 1:
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env.setdefault(var, str(threads))
        out = workdir / f"{label}-shard{i}.json"
        argv = ["-p", "no:xdist", *pytest_args, *extra, f"--benchmark-json={out}"]
        if n > 1:  # one queue for all GPUs: each process takes the next unclaimed engine group
            argv += [f"--trt-claim-dir={workdir / (label + '-claims')}", f"--trt-claim-rank={i}/{n}"]
        how = "forked" if fork else "started"
        print(
            f"[pytest-trt run] {label} shard {i}/{n} on CUDA_VISIBLE_DEVICES={gpu} ({how}): {' '.join(argv)}",
            flush=True,
        )
        if fork:
            omp = env.get("OMP_NUM_THREADS", "")
            procs.append((_Forked(argv, env, int(omp) if n > 1 and omp.isdigit() else None), out, gpu))
        else:
            procs.append((subprocess.Popen([sys.executable, "-m", "pytest", *argv], env=env), out, gpu))
    runs, labels, worst = [], [], 0
    for p, out, gpu in procs:
        code = p.wait()
        if code not in (0, 5):  # 5: this shard collected nothing
            worst = max(worst, 1)
        if out.exists():
            runs.append(load_run(out))
            labels.append(f"{label}:gpu{gpu}" if gpu is not None else label)
    return runs, labels, worst


def run(args: argparse.Namespace) -> int:
    """``pytest-trt run``: the sub-runs (per power mode), merged into ``--out``; the worst exit code."""
    pytest_args = list(args.pytest_args)
    if pytest_args and pytest_args[0] == "--":
        pytest_args = pytest_args[1:]
    launched = time.time()
    try:
        gpus: list[str | None] = list(shard.parse_gpus(args.gpus, gpu_count())) if args.gpus else [None]
    except ValueError as exc:
        print(f"pytest-trt run: {exc}", file=sys.stderr)
        return 2
    modes: list[int | None] = [int(m) for m in args.power_modes.split(",")] if args.power_modes else [None]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="pytest-trt-run-"))
    workdir.mkdir(parents=True, exist_ok=True)
    fork = can_fork() and not args.spawn
    if fork:
        preload()
    all_runs: list[dict[str, object]] = []
    all_labels: list[str] = []
    worst = 0
    rows: list[dict[str, object]] = []
    for k, mode in enumerate(modes):
        extra: list[str] = []
        label = "run"
        if mode is not None:
            from pytest_trt.hardware import jetson

            ok, msg = jetson.set_power_mode(mode, settle_s=args.settle)
            print(f"[pytest-trt run] {msg}", flush=True)
            if not ok:
                worst = max(worst, 1)
                continue
            extra = [f"--trt-power-mode={mode}"]
            label = f"pm{mode}"
        started = launched if k == 0 else time.time()  # the first sub-run includes the launcher's start
        runs, labels, code = run_subsets(pytest_args, gpus, extra, workdir, label, fork)
        rows += wall.balance(runs, labels, started)  # per sub-run: modes run one after the other
        all_runs += runs
        all_labels += labels
        worst = max(worst, code)
    if not all_runs:
        print("pytest-trt run: no sub-run produced JSON", file=sys.stderr)
        return max(worst, 1)
    merged = shard.merge(all_runs, all_labels)
    merged["machine_info"]["pytest_trt"]["balance"] = rows
    for line in wall.render_balance(rows):
        print(f"[pytest-trt run] {line}", flush=True)
    write_json(Path(args.out), merged)
    print(
        f"[pytest-trt run] merged {len(merged['benchmarks'])} benchmarks from {len(all_runs)} runs into {args.out}"
    )
    return worst
