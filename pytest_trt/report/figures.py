"""The report's figures (matplotlib, Agg): the reference studies' sweeps, the real-time FPS curve,
sparsity against quality, and each benchmark's median over stored runs."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from pytest_trt.gate import history
from pytest_trt.report.tables import memory_mb

FIGURES = (
    "throughput_vs_batch",
    "latency_by_precision",
    "closeness_curves",
    "memory_vs_batch",
    "build_vs_opt_level",
    "fps_vs_resolution",
    "sparsity_vs_quality",
)


def series_label(r: dict[str, Any], *keys: str) -> str:
    return " ".join(str(r.get(k)) for k in keys if r.get(k) is not None)


def _mem_mb(r: dict[str, Any]) -> float | None:
    peak = memory_mb(r).get("max")
    return float(peak) if peak is not None else None


def make_figures(rows: list[dict[str, Any]], out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: dict[str, Path] = {}

    def save(fig: Any, name: str) -> None:
        p = out / f"{name}.png"
        fig.tight_layout()
        fig.savefig(p, dpi=110)
        plt.close(fig)
        figs[name] = p

    def lines(
        series: dict[str, list[tuple[float, float]]],
        name: str,
        title: str,
        xlabel: str,
        ylabel: str,
        marker: str,
        xscale: dict[str, Any],
    ) -> None:
        """One line per series label, points sorted by x: the shape of every sweep figure here."""
        fig, ax = plt.subplots(figsize=(8, 5))
        for label, pts in sorted(series.items()):
            pts = sorted(pts)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=label)
        if xscale:
            ax.set_xscale(**xscale)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        save(fig, name)

    # Files from other pytest-benchmark suites (no batch, no latency breakdown) still get the table.
    timed = [
        r
        for r in rows
        if r.get("throughput_samples_per_s")
        and r.get("batch") is not None
        and (r.get("latency_ms") or {}).get("model")
    ]
    # 1. throughput vs batch, one line per model/backend/precision (dynamic profiles first)
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in timed:
        series[series_label(r, "model", "backend", "precision", "profile")].append(
            (int(r["batch"]), float(r["throughput_samples_per_s"]))
        )
    if series:
        lines(
            series,
            "throughput_vs_batch",
            "Throughput vs inference batch",
            "inference batch",
            "throughput (samples/s, median)",
            "o",
            {"value": "log", "base": 2},
        )
    # 2. latency mean / max per model+backend x precision at the smallest batch
    if timed:
        small = min(int(r["batch"]) for r in timed)
        sel = [r for r in timed if int(r["batch"]) == small]
        labels = [series_label(r, "model", "backend", "precision", "profile") for r in sel]
        means = [r["latency_ms"]["model"]["mean"] for r in sel]
        maxes = [r["latency_ms"]["model"]["max"] for r in sel]
        fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(sel) + 2), 5))
        xs = range(len(sel))
        ax.bar([x - 0.2 for x in xs], means, width=0.4, label="mean")
        ax.bar([x + 0.2 for x in xs], maxes, width=0.4, label="max")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"Latency at batch {small} (model only)")
        ax.legend()
        save(fig, "latency_by_precision")
    # 3. closeness curves
    curves: dict[str, dict[str, float]] = {}
    for r in rows:
        c = (r.get("quality") or {}).get("closeness")
        if c:
            curves.setdefault(series_label(r, "model", "backend", "precision"), c)
    if curves:
        lines(
            {k: [(float(f), v) for f, v in c.items()] for k, c in curves.items()},
            "closeness_curves",
            "Closeness to the PyTorch fp32 baseline",
            "atol as a fraction of the baseline's 90th-percentile |output|",
            "closeness (% of outputs within atol)",
            "o",
            {"value": "log"},
        )
    # 4. memory vs batch
    mem: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in timed:
        m = _mem_mb(r)
        if m is not None:
            mem[series_label(r, "model", "backend", "precision", "profile")].append((int(r["batch"]), m))
    if mem:
        lines(
            mem,
            "memory_vs_batch",
            "Memory vs batch (device memory used on GPU, process RSS on CPU)",
            "inference batch",
            "memory during inference, max (MiB)",
            "s",
            {"value": "log", "base": 2},
        )
    # 5. build time vs optimization level
    build: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        eng = r.get("engine") or {}
        bs = eng.get("build_seconds")
        if bs is not None and r.get("opt_level") is not None and not eng.get("cached"):
            key = series_label(r, "model", "backend", "precision", "profile")
            if r.get("opt_level") is not None and all(
                p[0] != int(r["opt_level"]) for p in build[key]
            ):  # one build per level (batches share it)
                build[key].append((int(r["opt_level"]), float(bs)))
    if build:
        lines(
            build,
            "build_vs_opt_level",
            "Build time vs optimization level",
            "builder optimization level",
            "build time (s, uncached builds)",
            "^",
            {},
        )
    # 6. the video pipeline: whole-loop FPS vs resolution per backend / preprocessing (test_realtime.py)
    fps: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        rt = r.get("realtime") or {}
        if rt.get("fps_mean") and r.get("hw"):
            label = series_label(r, "model", "backend", "precision") + f" prep {rt.get('preprocess_on')}"
            fps[label].append((int(r["hw"]), float(rt["fps_mean"])))
    if fps:
        lines(
            fps,
            "fps_vs_resolution",
            "Real-time loop FPS vs resolution",
            "resolution (px)",
            "frames/s (mean)",
            "s",
            {},
        )
    # 7. sparsity: what pruning cost (top-1 agreement with the dense model) against the speed it bought
    from pytest_trt.report.tables import sparsity_rows

    pts = [
        (it["speedup_vs_dense"], it["sparsity"].get("pruning_top1_agreement", 1 - it["sparsity"]["pruning_rel_error"]),
         series_label(it["row"], "model", "backend", "precision", "batch"))
        for it in sparsity_rows(rows)
        if it["speedup_vs_dense"]
    ]  # fmt: skip
    if pts:
        fig, ax = plt.subplots(figsize=(8, 5))
        for x, y, label in pts:
            ax.scatter([x], [y], label=label)
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.set_xlabel("speed vs the dense model (median latency ratio)")
        ax.set_ylabel("pruned vs dense: top-1 agreement (else 1 - rel. error)")
        ax.set_title("2:4 sparsity: quality against speed")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        save(fig, "sparsity_vs_quality")
    return figs


def history_figure(tl: dict[str, list[history.Point]], out: Path, most: int = 12) -> Path | None:
    """Median per run for the benchmarks with most runs (regressed first), the band, verdict marks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(tl, key=lambda k: (not any(p.verdict == "regressed" for p in tl[k]), -len(tl[k]), k))[:most]
    keys = [k for k in keys if len(tl[k]) >= 3]
    if not keys:
        return None
    cols = min(3, len(keys))
    rows_n = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(5 * cols, 3 * rows_n), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        pts = tl[key]
        x = [p.run for p in pts]
        ax.plot(x, [p.median_ms for p in pts], "o-", ms=3, color="tab:blue", label="median")
        banded = [p for p in pts if p.band_ms]
        if banded:
            ax.fill_between(
                [p.run for p in banded],
                [p.band_ms[0] for p in banded if p.band_ms],
                [p.band_ms[1] for p in banded if p.band_ms],
                color="tab:blue",
                alpha=0.15,
                label="noise band of the runs before",
            )
        for verdict, colour in (("regressed", "tab:red"), ("improved", "tab:green")):
            hit = [p for p in pts if p.verdict == verdict]
            if hit:
                ax.scatter(
                    [p.run for p in hit],
                    [p.median_ms for p in hit],
                    s=60,
                    marker="x",
                    color=colour,
                    label=verdict,
                    zorder=3,
                )
        ax.set_title(key.split("::")[-1][-60:], fontsize=8)
        ax.set_xlabel("run")
        ax.set_ylabel("median ms")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    p = out / "history.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p
