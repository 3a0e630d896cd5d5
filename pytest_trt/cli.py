"""``pytest-trt`` command: compare, report, run (one pytest per GPU and/or per Jetson power mode).

Exit codes: 0 fine, 1 a regression (compare) or a failing sub-run (run), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pytest_trt import compare, shard
from pytest_trt.results import ResultsError, load_run, write_records


def _compare(args: argparse.Namespace) -> int:
    try:
        if args.by:
            paths = compare.expand_paths(args.files + (args.candidate or []))
            sbs = compare.side_by_side(paths, args.by, args.metric)
            print(compare.render_side_by_side(sbs))
            if args.markdown:
                Path(args.markdown).write_text(compare.render_side_by_side(sbs, markdown=True))
            if args.json:
                _emit_json(args.json, sbs)
            return 0
        if args.candidate:
            base_p, cand_p = compare.expand_paths(args.files), compare.expand_paths(args.candidate)
        elif len(args.files) == 2:
            base_p, cand_p = compare.expand_paths(args.files[:1]), compare.expand_paths(args.files[1:])
        else:
            print(
                "pytest-trt compare: give BASELINE CANDIDATE, or BASELINE... --candidate CANDIDATE...",
                file=sys.stderr,
            )
            return 2
        base, cand = compare.load_side(base_p), compare.load_side(cand_p)
    except ResultsError as exc:
        print(f"pytest-trt compare: {exc}", file=sys.stderr)
        return 2
    rule = compare.Rule(
        threshold=args.threshold / 100,
        floor_s=args.floor_us * 1e-6,
        alpha=args.alpha,
        closeness_tol_pp=args.closeness_tol,
        ratio_tol=args.ratio_tol,
        across_env=args.across_env,
        include_invalid=args.include_invalid,
        metric=args.metric,
    )
    verdicts = compare.compare_sides(base, cand, rule)
    notes = compare.env_notes(base, cand)
    print(compare.render_text(verdicts, notes))
    if args.markdown:
        Path(args.markdown).write_text(compare.render_markdown(verdicts, notes))
    if args.json:
        _emit_json(
            args.json,
            {"rule": rule.__dict__, "environment": notes, "verdicts": [v.as_dict() for v in verdicts]},
        )
    failing = [v for v in verdicts if v.verdict in compare.FAILING]
    if failing:
        print(f"{len(failing)} regression(s): " + ", ".join(v.key for v in failing), file=sys.stderr)
    return 1 if failing else 0


def _emit_json(target: str, payload: object) -> None:
    text = json.dumps(payload, indent=1, default=str)
    if target == "-":
        print(text)
    else:
        Path(target).write_text(text)


def _report(args: argparse.Namespace) -> int:
    from pytest_trt.report import write_report

    try:
        out = write_report(compare.expand_paths(args.files), Path(args.out))
    except ResultsError as exc:
        print(f"pytest-trt report: {exc}", file=sys.stderr)
        return 2
    for name, p in out.items():
        print(f"{name}: {p}")
    return 0


def _gpu_count() -> int:
    from pytest_trt import telemetry

    return len(telemetry.visible_handles())


def _run_subsets(
    pytest_args: Sequence[str], gpus: Sequence[str | None], extra: Sequence[str], workdir: Path, label: str
) -> tuple[list[dict[str, object]], list[str], int]:
    """Start one pytest per GPU (in parallel), each with its shard; return their JSON and worst code."""
    procs = []
    n = len(gpus)
    for i, gpu in enumerate(gpus):
        env = dict(os.environ)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        out = workdir / f"{label}-shard{i}.json"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:xdist",
            *pytest_args,
            *extra,
            f"--benchmark-json={out}",
        ]
        if n > 1:
            cmd.append(f"--trt-shard={i}/{n}")
        print(
            f"[pytest-trt run] {label} shard {i}/{n} on CUDA_VISIBLE_DEVICES={gpu}: {' '.join(cmd[3:])}",
            flush=True,
        )
        procs.append((subprocess.Popen(cmd, env=env), out, gpu))
    runs, labels, worst = [], [], 0
    for p, out, gpu in procs:
        code = p.wait()
        if code not in (0, 5):  # 5: this shard collected nothing
            worst = max(worst, 1)
        if out.exists():
            runs.append(load_run(out))
            labels.append(f"{label}:gpu{gpu}" if gpu is not None else label)
    return runs, labels, worst


def _run(args: argparse.Namespace) -> int:
    pytest_args = list(args.pytest_args)
    if pytest_args and pytest_args[0] == "--":
        pytest_args = pytest_args[1:]
    try:
        gpus: list[str | None] = list(shard.parse_gpus(args.gpus, _gpu_count())) if args.gpus else [None]
    except ValueError as exc:
        print(f"pytest-trt run: {exc}", file=sys.stderr)
        return 2
    modes: list[int | None] = [int(m) for m in args.power_modes.split(",")] if args.power_modes else [None]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="pytest-trt-run-"))
    workdir.mkdir(parents=True, exist_ok=True)
    all_runs, all_labels, worst = [], [], 0
    for mode in modes:
        extra: list[str] = []
        label = "run"
        if mode is not None:
            from pytest_trt import jetson

            ok, msg = jetson.set_power_mode(mode, settle_s=args.settle)
            print(f"[pytest-trt run] {msg}", flush=True)
            if not ok:
                worst = max(worst, 1)
                continue
            extra = [f"--trt-power-mode={mode}"]
            label = f"pm{mode}"
        runs, labels, code = _run_subsets(pytest_args, gpus, extra, workdir, label)
        all_runs += runs
        all_labels += labels
        worst = max(worst, code)
    if not all_runs:
        print("pytest-trt run: no sub-run produced JSON", file=sys.stderr)
        return max(worst, 1)
    merged = shard.merge(all_runs, all_labels)
    write_records(Path(args.out), merged)
    print(
        f"[pytest-trt run] merged {len(merged['benchmarks'])} benchmarks from {len(all_runs)} runs into {args.out}"
    )
    return worst


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pytest-trt", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare", help="gate a candidate run against a baseline; side by side with --by")
    c.add_argument(
        "files", nargs="+", help="BASELINE CANDIDATE, or baselines with --candidate (globs allowed)"
    )
    c.add_argument("-c", "--candidate", nargs="+", help="candidate files (globs allowed; several runs)")
    c.add_argument("--threshold", type=float, default=5.0, help="latency ratio threshold in %% (default 5)")
    c.add_argument("--floor-us", type=float, default=20.0, help="absolute latency floor in us (default 20)")
    c.add_argument("--alpha", type=float, default=0.01, help="Mann-Whitney significance level (default 0.01)")
    c.add_argument(
        "--closeness-tol", type=float, default=1.0, help="allowed closeness drop, percentage points"
    )
    c.add_argument("--ratio-tol", type=float, default=0.01, help="allowed agreement/accuracy drop (absolute)")
    c.add_argument("--metric", choices=("median", "mean", "p99", "min"), default="median")
    c.add_argument(
        "--across-env", action="store_true", help="judge even when GPU/driver/TensorRT/recipe differ"
    )
    c.add_argument("--include-invalid", action="store_true", help="judge runs marked invalid (unstable) too")
    c.add_argument("--by", help="side by side, one column per value of this machine_info/extra_info key")
    c.add_argument("--json", help="write the verdicts as JSON (- for stdout)")
    c.add_argument("--markdown", help="write a Markdown table")
    c.set_defaults(func=_compare)
    r = sub.add_parser("report", help="HTML + Markdown report with plots from benchmark JSON")
    r.add_argument("files", nargs="+")
    r.add_argument("--out", required=True, help="output directory")
    r.set_defaults(func=_report)
    u = sub.add_parser("run", help="one pytest per GPU / power mode, merged into one JSON")
    u.add_argument("--gpus", help="all, or a comma list of GPU indices/UUIDs")
    u.add_argument("--power-modes", help="Jetson nvpmodel modes to run in turn, e.g. 0,1")
    u.add_argument("--settle", type=float, default=5.0, help="seconds to wait after switching power mode")
    u.add_argument("--out", default="results/merged.json", help="merged pytest-benchmark JSON")
    u.add_argument("--workdir", help="where per-shard JSON files go (default: a temp dir)")
    u.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then pytest arguments")
    u.set_defaults(func=_run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
