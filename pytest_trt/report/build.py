"""``pytest-trt report``: the reference studies' figures, drawn from the user's own runs.

Writes PNGs, a self-contained HTML page (images embedded) and a Markdown summary:
throughput vs inference batch per precision, latency (mean and max) per model and precision,
closeness vs atol fraction, memory during inference vs batch, build time vs optimization level, and --
given three or more runs -- each benchmark's median over the runs with the band an unchanged run
falls in, regressions marked (:mod:`pytest_trt.gate.history`).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_trt.gate import change_points, history
from pytest_trt.gate.runs import load_run
from pytest_trt.report.figures import FIGURES, history_figure, make_figures
from pytest_trt.report.tables import (
    detection_table,
    frameworks_table,
    html_table,
    markdown,
    results_table,
    sparsity_table,
)

__all__ = ["FIGURES", "make_figures", "write_report"]


def _rows(loaded: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    machine: dict[str, Any] = {}
    for data in loaded:
        machine = machine or (data.get("machine_info", {}).get("pytest_trt") or {})
        seen = set()
        for b in data["benchmarks"]:
            ex = dict(b.get("extra_info") or {})
            ex["_name"] = b.get("name")
            ex["_stats"] = b.get("stats") or {}
            rows.append(ex)
            seen.add(b.get("fullname"))
        for c in (data.get("pytest_trt") or {}).get("cases", []):
            if c.get("nodeid") not in seen and c.get("status") not in ("skipped",):
                ex = dict(c.get("extra_info") or {})
                ex["_name"] = c.get("id")
                ex["_stats"] = {}
                rows.append(ex)
    return rows, machine


BUILDER_KEYS = ("trt_version", "tensorrt_rtx_version")


def _builds_by_version(loaded: Sequence[dict[str, Any]]) -> list[str]:
    """Runs of more than one builder version: what each version did with each case (Markdown lines)."""
    from pytest_trt.gate import render, side_by_side

    for key in BUILDER_KEYS:
        seen = {(d.get("machine_info", {}).get("pytest_trt") or {}).get(key) for d in loaded}
        if len(seen - {None}) > 1:
            table = side_by_side.side_by_side_runs(loaded, key)
            return [f"## Builds by {key}", "", render.render_side_by_side(table, markdown=True)]
    return []


def write_report(paths: Sequence[Path], out: Path, window: int = 10) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    loaded = [load_run(p) for p in paths]  # each file read once, for the table and the timeline
    rows, machine = _rows(loaded)
    figs = make_figures(rows, out)
    events: list[str] = []
    changes: list[str] = []
    if len(paths) >= 3:
        tl = history.timeline(loaded, window)
        fig = history_figure(tl, out)
        if fig is not None:
            figs["history"] = fig
        events = [
            f"- run {p.run} ({p.label}): `{k}` {p.verdict}, median {p.median_ms:.4g} ms"
            for k, pts in tl.items()
            for p in pts
            if p.verdict in ("regressed", "improved")
        ]
        try:
            changes = [c.line(k) for k, pts in tl.items() for c in change_points.find(pts)]
        except change_points.ChangePointsUnavailable as exc:
            changes = [f"- not computed: {exc}"]
    table = results_table(rows)
    sections = [
        ("Framework comparison (speed-up against PyTorch fp32 on the same device)", frameworks_table(rows)),
        ("2:4 sparsity: what pruning cost, and what it bought", sparsity_table(rows)),
        ("Detection and instance segmentation (the thesis's table)", detection_table(rows)),
        ("All results", table),
    ]
    env = ", ".join(
        f"{k}={machine.get(k)}" for k in ("gpu", "driver", "trt_version", "torch", "onnxruntime", "openvino")
    )
    md = [
        "# pytest-trt report",
        "",
        f"Runs: {', '.join(str(p) for p in paths)}",
        "",
        f"Environment: {env}",
        "",
    ]
    md += [f"![{n}]({p.name})" for n, p in figs.items()] + [""]
    if len(paths) >= 3:
        md += ["## Changes over the runs", "", *(events or ["none beyond the noise band"]), ""]
        md += ["## Change points (E-divisive means, Apache Otava)", "", *(changes or ["none"]), ""]
    for title, t in sections:
        if t:
            md += [f"## {title}", "", *markdown(t), ""]
    builders = _builds_by_version(loaded)
    md += builders
    (out / "report.md").write_text("\n".join(md) + "\n")
    imgs = "".join(
        f'<figure><img alt="{html.escape(n)}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        f"<figcaption>{html.escape(n.replace('_', ' '))}</figcaption></figure>"
        for n, p in figs.items()
    )
    tables = "".join(f"<h2>{html.escape(title)}</h2>{html_table(t)}" for title, t in sections if t)
    if builders:
        tables += f"<h2>{html.escape(builders[0].lstrip('# '))}</h2><pre>{html.escape(chr(10).join(builders[2:]))}</pre>"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>pytest-trt report</title><style>"
        "body{font-family:sans-serif;margin:2em}img{max-width:100%}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:3px 6px}figure{margin:1em 0}</style></head><body>"
        f"<h1>pytest-trt report</h1><p>{html.escape(env)}</p>{imgs}{tables}</body></html>"
    )
    (out / "report.html").write_text(page)
    return {"html": out / "report.html", "markdown": out / "report.md", **figs}
