"""The terminal summary: one line per measured case, skipped cases folded by reason, speed-ups
against named PyTorch anchors, validity notes and failures."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

_HEAD = f"{'case':58} {'status':14} {'median ms':>10} {'p99 ms':>9} {'samples/s':>11} {'close@0.1':>9} {'valid':>5}"


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def sort_key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """Cases in matrix order, batches and resolutions numerically (b2 before b16)."""
    ei = record.get("extra_info", {})
    if "batch" not in ei:
        return (record.get("id", ""),)
    return (
        str(ei.get("model")),
        str(ei.get("backend")),
        str(ei.get("precision")),
        str(ei.get("profile")),
        int(ei.get("batch") or 0),
        int(ei.get("opt_level") or 0),
        int(ei.get("hw") or 0),
        record.get("id", ""),
    )


def anchor_label(ei: Mapping[str, Any]) -> str | None:
    """What a torch fp32 result is as a speed-up anchor (what other cases are N times faster than): eager
    launches or a captured CUDA graph."""
    if ei.get("precision") != "fp32" or not ei.get("throughput_samples_per_s"):
        return None
    graph = bool((ei.get("timing") or {}).get("cuda_graph"))
    if ei.get("backend") == "torch_eager" or (ei.get("backend") == "torch" and not graph):
        return "torch fp32 eager"
    if ei.get("backend") == "torch":
        return "torch fp32 + CUDA graph"
    return None


def speedups(records: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Lines of speed-ups by anchor: each case against every torch fp32 anchor of the same
    model, batch and resolution that this run measured."""
    rows = list(records)
    bases: dict[str, dict[tuple[Any, ...], float]] = {}
    for r in rows:
        ei = r["extra_info"]
        label = anchor_label(ei)
        if label:
            bases.setdefault(label, {})[(ei["model"], ei["batch"], ei.get("hw"))] = ei[
                "throughput_samples_per_s"
            ]
    out: dict[str, list[str]] = {}
    for label, table in sorted(bases.items()):
        for r in rows:
            ei = r["extra_info"]
            base = table.get((ei.get("model"), ei.get("batch"), ei.get("hw")))
            thr = ei.get("throughput_samples_per_s")
            if base and thr and anchor_label(ei) != label:
                ratio = (ei.get("throughput") or {}).get("p99_over_p50")
                out.setdefault(label, []).append(
                    f"  {r['id']}: {thr / base:.2f}x; p99/p50 {_fmt(ratio, '.2f')}"
                )
    return out


def fold_skips(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per skip reason: how many cases, and an example id."""
    groups: dict[str, list[str]] = {}
    for r in records:
        reason = re.sub(r"^Skipped: ", "", str(r.get("message") or "no reason given"))
        groups.setdefault(reason, []).append(r["id"])
    return [
        f"  {len(ids):4d} skipped: {reason[:150]} (e.g. {ids[0]})"
        for reason, ids in sorted(groups.items(), key=lambda kv: -len(kv[1]))
    ]


def precision_speedups(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Each backend's lower precisions against its own fp32 (same model, batch, resolution, profile)."""
    rows = list(records)
    fp32 = {
        (ei["backend"], ei["model"], ei["batch"], ei.get("hw"), ei.get("profile")): ei[
            "throughput_samples_per_s"
        ]
        for ei in (r["extra_info"] for r in rows)
        if ei.get("precision") == "fp32" and ei.get("throughput_samples_per_s")
    }
    out = []
    for r in rows:
        ei = r["extra_info"]
        key = (ei.get("backend"), ei.get("model"), ei.get("batch"), ei.get("hw"), ei.get("profile"))
        base, thr = fp32.get(key), ei.get("throughput_samples_per_s")
        if ei.get("precision") != "fp32" and base and thr:
            out.append(f"  {r['id']}: {thr / base:.2f}x its backend's fp32")
    return out


def context_modes(records: Iterable[Mapping[str, Any]]) -> str:
    """Which timing contexts produced these figures: fresh (isolated workers) and/or shared."""
    modes = sorted(
        {((r["extra_info"].get("timing") or {}).get("context") or {}).get("mode", "?") for r in records}
        - {"?"}
    )
    return "+".join(modes) or "-"


def write(
    tr: Any, records: Iterable[Mapping[str, Any]], cache_line: str, timing_lines: Iterable[str] = ()
) -> None:
    rows = sorted(records, key=sort_key)
    shown = [r for r in rows if r["status"] != "skipped"]
    skipped = [r for r in rows if r["status"] == "skipped"]
    tr.write_sep("=", "pytest-trt results")
    tr.write_line(_HEAD)
    notes = []
    for r in shown:
        ei = r["extra_info"]
        lat = (ei.get("latency_ms") or {}).get("model", {})
        close = ((ei.get("quality") or {}).get("closeness") or {}).get("0.1")
        valid = ei.get("valid")
        tr.write_line(
            f"{r['id'][:58]:58} {r['status']:14} {_fmt(lat.get('median')):>10} {_fmt(lat.get('p99')):>9} "
            f"{_fmt(ei.get('throughput_samples_per_s'), '.1f'):>11} {_fmt(close, '.2f'):>9} "
            f"{'-' if valid is None else ('yes' if valid else 'NO'):>5}"
        )
        for reason in (ei.get("validity") or {}).get("reasons", []):
            notes.append(f"{r['id']}: {reason}")
        if r["status"] in ("build_failed", "oom", "run_failed") and r.get("message"):
            notes.append(f"{r['id']}: {r['status']}: {str(r['message'])[:200]}")
    for line in fold_skips(skipped):
        tr.write_line(line)
    for label, lines in speedups(shown).items():
        tr.write_sep("-", f"speed-up against {label} (same model, batch; {context_modes(shown)} contexts)")
        for line in lines:
            tr.write_line(line)
    by_precision = precision_speedups(shown)
    if by_precision:
        tr.write_sep("-", f"precision speed-up per backend ({context_modes(shown)} contexts)")
        for line in by_precision:
            tr.write_line(line)
    if notes:
        tr.write_sep("-", "validity and failures")
        for n in notes[:50]:
            tr.write_line(f"  {n}")
    for line in timing_lines:
        tr.write_line(line)
    tr.write_line(cache_line)


def session_notes(
    tr: Any,
    slowest: list[str],
    saved: list[str],
    all_skipped: int,
    verdicts: list[Any] | None,
    baseline: Any,
) -> None:
    """After the table: the slowest cases, where each result file went, a run that measured nothing
    (``all_skipped`` cases, all skipped), and the in-session regression gate's verdicts."""
    if len(slowest) > 1:
        tr.write_line("pytest-trt: the slowest cases and where their time went:")
        for line in slowest:
            tr.write_line(line)
    for line in saved:
        tr.write_line(f"pytest-trt results: {line}", red="could not write" in line)
    if all_skipped:
        tr.write_line(
            f"pytest-trt: nothing was measured: all {all_skipped} cases were skipped (the reasons are "
            "above); exit code 5",
            red=True,
        )
    if verdicts:
        from pytest_trt.gate import compare

        tr.write_sep("-", f"regression gate against {baseline}")
        for v in verdicts:
            if v.verdict != "unchanged":
                tr.write_line(f"  {v.verdict:10} {v.key}: {v.reason}")
        bad = [v for v in verdicts if v.verdict in compare.FAILING]
        tr.write_line(f"  {len(bad)} regression(s) among {len(verdicts)} compared results")
