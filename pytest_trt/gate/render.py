"""Rendering of comparisons: the verdict table (text and Markdown) and the side-by-side table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_trt.gate.compare import VERDICTS, Comparison


def _f(x: float | None, spec: str = ".4g") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def render_text(verdicts: Sequence[Comparison], env_notes: Sequence[str]) -> str:
    lines = []
    if env_notes:
        lines.append("environment differences:")
        lines += [f"  {n}" for n in env_notes]
    lines.append(
        f"{'verdict':12} {'base ms':>9} {'cand ms':>9} {'ratio':>7} {'p99 b/c ms':>17} {'samples/s b/c':>19}  result"
    )
    for v in verdicts:
        lines.append(
            f"{v.verdict:12} {_f(v.base_median_ms):>9} {_f(v.cand_median_ms):>9} {_f(v.ratio, '.3f'):>7} "
            f"{_f(v.base_p99_ms) + '/' + _f(v.cand_p99_ms):>17} {_f(v.base_throughput, '.1f') + '/' + _f(v.cand_throughput, '.1f'):>19}  "
            f"{v.key}"
            + (
                f"  [{v.reason}]"
                if v.reason
                and (v.verdict != "unchanged" or "detectable" in v.reason or "no timing" in v.reason)
                else ""
            )
        )
        for name, d in v.quality_deltas.items():
            if abs(d) > 0:
                lines.append(f"{'':12} quality {name}: {d:+.4g}")
    counts = {k: sum(1 for v in verdicts if v.verdict == k) for k in VERDICTS}
    lines.append("summary: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n))
    return "\n".join(lines)


def render_markdown(verdicts: Sequence[Comparison], env_notes: Sequence[str]) -> str:
    out = ["# pytest-trt comparison", ""]
    if env_notes:
        out += ["**Environment differences:**", ""] + [f"- {n}" for n in env_notes] + [""]
    out += [
        "| verdict | result | base ms | cand ms | ratio | p99 base/cand ms | samples/s base/cand | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        out.append(
            f"| {v.verdict} | `{v.key}` | {_f(v.base_median_ms)} | {_f(v.cand_median_ms)} | "
            f"{_f(v.ratio, '.3f')} | {_f(v.base_p99_ms)}/{_f(v.cand_p99_ms)} | "
            f"{_f(v.base_throughput, '.1f')}/{_f(v.cand_throughput, '.1f')} | {v.reason} |"
        )
    return "\n".join(out) + "\n"


def render_side_by_side(sbs: Mapping[str, Any], markdown: bool = False) -> str:
    cols = sbs["columns"]
    head = [f"{c} ({', '.join(sbs['recipes'].get(c, [])) or 'recipe ?'})" for c in cols]
    if markdown:
        lines = [f"| result | {' | '.join(head)} |", "|---|" + "---|" * len(cols)]
        for r, cells in sbs["rows"].items():
            lines.append(f"| `{r}` | " + " | ".join(_f(cells[c]) for c in cols) + " |")
        return "\n".join(lines) + "\n"
    lines = [f"{sbs['metric']} latency (ms) by {sbs['by']}:", "  columns: " + "; ".join(head)]
    width = max([len(r) for r in sbs["rows"]] + [10])
    lines.append(f"{'result':{width}} " + " ".join(f"{c[:14]:>14}" for c in cols))
    for r, cells in sbs["rows"].items():
        lines.append(f"{r:{width}} " + " ".join(f"{_f(cells[c]):>14}" for c in cols))
    return "\n".join(lines)
