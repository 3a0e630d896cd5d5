"""``pytest-trt`` command: compare, report, merge (shards), noise (fit a noise model), run (one pytest per GPU).

Exit codes: 0 judged and clean, 1 a regression (compare) or a failing sub-run (run), 2 bad input or
nothing judged (every result invalid or untimed, a file given twice, an output that cannot be written).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pytest_trt.gate.rule_options import add_rule_options
from pytest_trt.gate.runs import ResultsError, expand_paths, load_run, write_json
from pytest_trt.run import launch, shard

if TYPE_CHECKING:
    from pytest_trt.gate import compare

# compare/history/regression (scipy) are imported by the commands that use them: `pytest-trt run`
# starts its GPU processes without waiting for imports it does not need.


def _sides(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """Baseline and candidate files from positional files, --candidate and/or --storage/--last."""
    from pytest_trt.gate import history

    files = expand_paths(args.files) if args.files else []
    cand = expand_paths(args.candidate) if args.candidate else []
    if args.storage:
        stored = history.storage_files(args.storage, args.machine)
        explicit = {p.resolve() for p in files + cand}
        stored = [p for p in stored if p.resolve() not in explicit]
        base, newest = history.split_last(stored, args.last, 0 if (cand or files) else args.candidate_runs)
        return base, cand or files or newest
    if cand:
        return files, cand
    if len(files) == 2:
        return files[:1], files[1:]
    raise ResultsError(
        "give BASELINE CANDIDATE, BASELINE... --candidate CANDIDATE..., or --storage DIR [--last N]"
    )


def _rule(args: argparse.Namespace) -> compare.Rule:
    from pytest_trt.gate.rule_options import rule_from

    try:
        return rule_from(vars(args).get)
    except ValueError as exc:
        raise ResultsError(str(exc)) from None


def _compare(args: argparse.Namespace) -> int:
    from pytest_trt.gate import compare, render, results, side_by_side

    try:
        if args.by:
            paths = expand_paths(args.files + (args.candidate or []))
            sbs = side_by_side.side_by_side(paths, args.by, args.metric)
            print(render.render_side_by_side(sbs))
            if args.markdown:
                Path(args.markdown).write_text(render.render_side_by_side(sbs, markdown=True))
            if args.json:
                _emit_json(args.json, {**sbs, "builds": side_by_side.builds_jsonable(sbs)})
            return 0
        base_p, cand_p = _sides(args)
        base, cand = results.load_side(base_p), results.load_side(cand_p)
        rule = _rule(args)
    except ResultsError as exc:
        print(f"pytest-trt compare: {exc}", file=sys.stderr)
        return 2
    verdicts = compare.compare_sides(base, cand, rule)
    notes = compare.env_notes(base, cand)
    print(f"baseline: {len(base_p)} run(s); candidate: {len(cand_p)} run(s)")
    print(render.render_text(verdicts, notes))
    if args.markdown:
        Path(args.markdown).write_text(render.render_markdown(verdicts, notes))
    if args.json:
        rule_d = {k: v for k, v in rule.__dict__.items() if k != "noise"}
        rule_d["noise_model"] = (
            rule.noise.as_dict() if rule.noise else ("bundled" if rule.use_bundled_noise else None)
        )
        _emit_json(
            args.json,
            {
                "rule": rule_d,
                "baseline": [str(p) for p in base_p],
                "candidate": [str(p) for p in cand_p],
                "environment": notes,
                "verdicts": [v.as_dict() for v in verdicts],
            },
        )
    failing = [v for v in verdicts if v.verdict in compare.FAILING]
    if failing:
        print(f"{len(failing)} regression(s): " + ", ".join(v.key for v in failing), file=sys.stderr)
        return 1
    counts = collections.Counter(v.verdict for v in verdicts)
    if not any(counts[j] for j in compare.JUDGED):  # a gate that judged nothing must not pass
        listed = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items())) or "no benchmarks"
        print(f"pytest-trt compare: nothing was judged ({listed}); see the reasons above", file=sys.stderr)
        return 2
    unjudged = sum(counts[u] for u in ("invalid", "unjudged", "incomparable"))
    if unjudged:
        print(f"note: {unjudged} benchmark(s) could not be judged (see the reasons above)", file=sys.stderr)
    return 0


def _noise(args: argparse.Namespace) -> int:
    """Fit run-to-run noise per batch size from repeated separate runs of the same suite."""
    from pytest_trt.gate import latency_rule, results

    try:
        paths = expand_paths(args.files)
        side = results.load_side(paths)
        medians = {k: [r.median_s for r in rs if r.median_s] for k, rs in side.items()}
        batches = {k: rs[0].extra.get("batch") for k, rs in side.items()}
        model = latency_rule.fit(medians, batches)
    except (ResultsError, ValueError) as exc:
        print(f"pytest-trt noise: {exc}", file=sys.stderr)
        return 2
    model.device = next((rs[0].env.get("gpu") for rs in side.values() if rs[0].env.get("gpu")), None) or "cpu"
    model.source = {"runs": len(paths), "benchmarks": len(side)}
    _emit_json(args.out, {"model": model.as_dict()})
    for b, n in sorted(model.by_batch.items()):
        need = latency_rule.runs_needed(
            n.run_sd, threshold=args.threshold / 100, alpha_b=latency_rule.sidak(0.01, args.suite_size)
        )
        print(
            f"batch {b}: run-to-run sd {n.run_sd * 100:.2f}% (df {n.df}); runs per side for {args.threshold:g}%: {need}"
        )
    print(f"pooled: run-to-run sd {model.pooled.run_sd * 100:.2f}% (df {model.pooled.df}) -> {args.out}")
    return 0


def _emit_json(target: str, payload: object) -> None:
    text = json.dumps(payload, indent=1, default=str)
    if target == "-":
        print(text)
    else:
        Path(target).write_text(text)


def _merge(args: argparse.Namespace) -> int:
    """One JSON from the shards of one run (CI runners with --trt-shard I/N each)."""
    try:
        paths = expand_paths(args.files)
        runs = [load_run(p) for p in paths]
    except ResultsError as exc:
        print(f"pytest-trt merge: {exc}", file=sys.stderr)
        return 2
    for r in runs:
        r.pop("_path", None)
    merged = shard.merge(runs, [p.stem for p in paths])
    names = [b.get("fullname") for b in merged["benchmarks"]]
    dup = sorted(str(n) for n, c in collections.Counter(names).items() if c > 1)
    if dup:
        print(
            f"pytest-trt merge: {len(dup)} benchmark(s) in more than one file, e.g. {dup[0]}", file=sys.stderr
        )
        return 2
    write_json(Path(args.out), merged)
    print(f"merged {len(names)} benchmarks from {len(paths)} files into {args.out}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from pytest_trt.gate import history
    from pytest_trt.report.build import write_report

    try:
        paths = expand_paths(args.files) if args.files else []
        if args.storage:
            paths += history.storage_files(args.storage, args.machine)[-args.last :]
        if not paths:
            raise ResultsError("give result files, or --storage DIR")
        out = write_report(paths, Path(args.out), window=args.window)
    except ResultsError as exc:
        print(f"pytest-trt report: {exc}", file=sys.stderr)
        return 2
    for name, p in out.items():
        print(f"{name}: {p}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pytest-trt", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare", help="gate a candidate run against a baseline; side by side with --by")
    c.add_argument(
        "files", nargs="*", help="BASELINE CANDIDATE, or baselines with --candidate (globs allowed)"
    )
    c.add_argument(
        "--storage", help="pytest-benchmark storage root (--benchmark-autosave writes .benchmarks)"
    )
    c.add_argument("--machine", help="machine id directory inside --storage (default: all)")
    c.add_argument("--last", type=int, default=10, help="baseline = the last N stored runs (default 10)")
    c.add_argument(
        "--candidate-runs",
        type=int,
        default=1,
        help="with --storage and no candidate files: the newest M stored runs are the candidate (default 1)",
    )
    c.add_argument("-c", "--candidate", nargs="+", help="candidate files (globs allowed; several runs)")
    add_rule_options(c.add_argument)
    c.add_argument("--by", help="side by side, one column per value of this machine_info/extra_info key")
    c.add_argument("--json", help="write the verdicts as JSON (- for stdout)")
    c.add_argument("--markdown", help="write a Markdown table")
    c.set_defaults(func=_compare)
    r = sub.add_parser("report", help="HTML + Markdown report with plots from benchmark JSON")
    r.add_argument("files", nargs="*")
    r.add_argument("--out", required=True, help="output directory")
    r.add_argument("--storage", help="add the runs of a pytest-benchmark storage root (oldest first)")
    r.add_argument("--machine", help="machine id directory inside --storage")
    r.add_argument("--last", type=int, default=50, help="with --storage: the newest N runs (default 50)")
    r.add_argument("--window", type=int, default=10, help="history: judge each run against the N before it")
    r.set_defaults(func=_report)
    g = sub.add_parser(
        "merge", help="one JSON from the shards of one run (--trt-shard I/N on several runners)"
    )
    g.add_argument("files", nargs="+", help="shard JSON files (globs allowed)")
    g.add_argument("--out", required=True)
    g.set_defaults(func=_merge)
    n = sub.add_parser("noise", help="fit run-to-run noise per batch size from repeated separate runs")
    n.add_argument("files", nargs="+", help="JSON of the same suite run several times (globs allowed)")
    n.add_argument("--out", default="noise.json", help="where the model goes (- for stdout)")
    n.add_argument("--threshold", type=float, default=5.0, help="change to detect, in %% (default 5)")
    n.add_argument("--suite-size", type=int, default=50, help="benchmarks compared at once (default 50)")
    n.set_defaults(func=_noise)
    u = sub.add_parser("run", help="one pytest per GPU / power mode, merged into one JSON")
    u.add_argument("--gpus", help="all, or a comma list of GPU indices/UUIDs")
    u.add_argument("--power-modes", help="Jetson nvpmodel modes to run in turn, e.g. 0,1")
    u.add_argument("--settle", type=float, default=5.0, help="seconds to wait after switching power mode")
    u.add_argument("--out", default="results/merged.json", help="merged pytest-benchmark JSON")
    u.add_argument("--workdir", help="where per-shard JSON files go (default: a temp dir)")
    u.add_argument(
        "--spawn",
        action="store_true",
        help="start each GPU process as a new interpreter (default on Linux: fork them once torch is imported)",
    )
    u.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then pytest arguments")
    u.set_defaults(func=launch.run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ResultsError as exc:
        print(f"pytest-trt {args.cmd}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output that cannot be written (a directory, a full disk, no permission)
        where = f"{exc.filename}: " if exc.filename else ""
        print(
            f"pytest-trt {args.cmd}: cannot write {where}{exc.strerror or exc}; choose another path",
            file=sys.stderr,
        )
        return 2
    return code


def console_main() -> NoReturn:
    """The installed ``pytest-trt`` command: :func:`main`, then exit.

    ``pytest-trt run`` imports torch to fork its GPU processes from; tearing that interpreter down
    takes about half a second after every result is written and closed, and users time the command
    end to end, so it ends without the teardown.
    """
    code = main()
    if "torch" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)


if __name__ == "__main__":
    console_main()
