"""Rendering of comparisons: the verdict table (text and Markdown) and the side-by-side table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_trt.gate.compare import VERDICTS, Comparison
from pytest_trt.gate.side_by_side import ABSENT, BuildCell, BuildChange


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


def _latency_table(sbs: Mapping[str, Any], head: Sequence[str], markdown: bool) -> list[str]:
    cols = sbs["columns"]
    if markdown:
        lines = [f"| result | {' | '.join(head)} |", "|---|" + "---|" * len(cols)]
        for r, cells in sbs["rows"].items():
            lines.append(f"| `{r}` | " + " | ".join(_f(cells[c]) for c in cols) + " |")
        return lines
    lines = [f"{sbs['metric']} latency (ms) by {sbs['by']}:", "  columns: " + "; ".join(head)]
    width = max([len(r) for r in sbs["rows"]] + [10])
    lines.append(f"{'result':{width}} " + " ".join(f"{c[:14]:>14}" for c in cols))
    for r, cells in sbs["rows"].items():
        lines.append(f"{r:{width}} " + " ".join(f"{_f(cells[c]):>14}" for c in cols))
    return lines


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x * 100:+.1f}%"


def _build_cell(cell: BuildCell, ch: BuildChange | None, note: int | None, wide: bool) -> str:
    if cell.status == ABSENT:
        return "absent"
    if not cell.built:
        return f"{cell.status}" + (f" [{note}]" if note else "")
    kb = f"{cell.plan_bytes / 1e3:.0f}kB" if cell.plan_bytes is not None else "?kB"
    secs = _f(cell.build_seconds, ".2f") + "s"
    layers = f"{cell.layers}L" if cell.layers is not None else "?L"
    if not wide:
        return f"{kb} {secs} {layers}" + (f" {_pct(ch.plan_bytes)}" if ch and ch.plan_bytes else "")
    out = [kb + (f" ({_pct(ch.plan_bytes)})" if ch and ch.plan_bytes else "")]
    out.append(secs + (f" ({_pct(ch.build_seconds)})" if ch and ch.build_seconds is not None else ""))
    out.append(layers + (f" ({ch.layers:+d})" if ch and ch.layers else ""))
    return " · ".join(out)


NOTE_CHARS = 400  # of the builder's words in a note (the JSON keeps every word)


def _build_table(sbs: Mapping[str, Any], head: Sequence[str], markdown: bool) -> list[str]:
    cols, rows = sbs["columns"], sbs["builds"]
    notes: dict[tuple[str, str], int] = {}  # one note per column and message: a refusal repeats per case
    table: dict[str, list[str]] = {}
    for key, row in rows.items():
        cells = []
        for c in cols:
            cell: BuildCell = row["cells"][c]
            note = None
            if cell.words and not cell.built:
                note = notes.setdefault((c, cell.words[:NOTE_CHARS]), len(notes) + 1)
            cells.append(_build_cell(cell, row["changes"].get(c), note, wide=markdown))
        table[key] = cells
    words = [f"[{n}] {c}: {msg}" for (c, msg), n in notes.items()]
    counts = []
    for c in cols:
        st = [rows[k]["cells"][c] for k in rows]
        counts.append(
            f"{c}: {sum(x.built for x in st)} built, "
            f"{sum(1 for x in st if not x.built and x.status != ABSENT)} not built, "
            f"{sum(1 for x in st if x.status == ABSENT)} absent"
        )
    title = f"builds by {sbs['by']} (plan size, build seconds, layers; change against the column before):"
    if markdown:
        lines = [f"**{title}**", "", f"| case | {' | '.join(head)} |", "|---|" + "---|" * len(cols)]
        lines += [f"| `{k}` | " + " | ".join(v) + " |" for k, v in table.items()]
        return [*lines, "", *[f"- {n}" for n in counts], *([""] + [f"{w}  " for w in words] if words else [])]
    width = max([len(k) for k in table] + [10])
    lines = [title, "  columns: " + "; ".join(head)]
    lines.append(f"{'case':{width}} " + " ".join(f"{c[:24]:>24}" for c in cols))
    lines += [f"{k:{width}} " + " ".join(f"{x[:24]:>24}" for x in v) for k, v in table.items()]
    return [*lines, *[f"  {n}" for n in counts], *words]


def status_changes(sbs: Mapping[str, Any], size_at: float = 0.05) -> list[str]:
    """The findings across columns: a status that changed, a plan that grew or shrank by ``size_at``."""
    out = []
    for key, row in sbs["builds"].items():
        for c, ch in row["changes"].items():
            if ch.status:
                out.append(f"{c}: {key}: {ch.status}")
            elif ch.plan_bytes is not None and abs(ch.plan_bytes) >= size_at:
                out.append(f"{c}: {key}: plan {_pct(ch.plan_bytes)}")
    return out


def render_side_by_side(sbs: Mapping[str, Any], markdown: bool = False) -> str:
    """The latency table (timed benchmarks) and the build table (every case record), as present."""
    cols = sbs["columns"]
    head = [f"{c} ({', '.join(sbs['recipes'].get(c, [])) or 'recipe ?'})" for c in cols]
    parts: list[list[str]] = []
    if sbs["rows"]:
        parts.append(_latency_table(sbs, head, markdown))
    if sbs.get("builds"):
        parts.append(_build_table(sbs, head, markdown))
        found = status_changes(sbs)
        title = f"changes between {sbs['by']} values (status, plan size >= 5%):"
        parts.append(
            ([f"**{title}**", ""] if markdown else [title])
            + ([f"- {f}" for f in found] if markdown else [f"  {f}" for f in found] or ["  none"])
            + (["- none"] if markdown and not found else [])
        )
    if not parts:
        return f"no timed benchmarks and no case records by {sbs['by']}"
    return "\n\n".join("\n".join(p) for p in parts) + ("\n" if markdown else "")
