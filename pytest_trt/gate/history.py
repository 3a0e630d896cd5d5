"""Stored runs over time: pytest-benchmark's own storage, and each benchmark's timeline with its noise band.

``pytest --benchmark-autosave`` (or ``--benchmark-save=NAME``) writes
``<storage>/<machine id>/NNNN_<name>.json``; ``--benchmark-storage`` moves the root (``file://`` URLs
accepted).  Runs are ordered by their ``datetime`` (then their counter).  A timeline judges every run
against the ``window`` runs before it with the same rule as ``compare``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_trt.gate import compare, results
from pytest_trt.gate.runs import ResultsError, load_run

_STORED = re.compile(r"^(\d{4})_.*\.json$")


def storage_files(storage: str | Path, machine: str | None = None) -> list[Path]:
    """Every stored run under a pytest-benchmark storage root, oldest first."""
    root = Path(str(storage).removeprefix("file://")).expanduser()
    if not root.is_dir():
        raise ResultsError(
            f"{root}: no pytest-benchmark storage here (pytest --benchmark-autosave writes ./.benchmarks; "
            "--benchmark-storage=DIR moves it)"
        )
    dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and (machine is None or d.name == machine)]
    if machine is not None and not dirs:
        have = ", ".join(d.name for d in root.iterdir() if d.is_dir()) or "none"
        raise ResultsError(f"{root}: no machine directory {machine!r} (have: {have})")
    found = []
    for d in dirs:
        for f in d.iterdir():
            m = _STORED.match(f.name)
            if m and f.is_file():
                data = load_run(f)
                found.append((str(data.get("datetime") or ""), int(m.group(1)), f))
    if not found:
        raise ResultsError(f"{root}: the storage holds no runs (NNNN_*.json)")
    return [f for _, _, f in sorted(found)]


def split_last(files: Sequence[Path], last: int, candidates: int) -> tuple[list[Path], list[Path]]:
    """(baseline, candidate): the newest ``candidates`` runs, and the ``last`` runs before them."""
    if last < 1 or candidates < 0:
        raise ResultsError("--last must be >= 1 and --candidate-runs >= 0")
    if len(files) < candidates + 1:
        raise ResultsError(
            f"the storage holds {len(files)} run(s): not enough for {candidates} candidate run(s) and a baseline"
        )
    cand = list(files[len(files) - candidates :]) if candidates else []
    rest = list(files[: len(files) - candidates])
    return rest[-last:], cand


@dataclass
class Point:
    run: int
    label: str
    median_ms: float
    band_ms: tuple[float, float] | None  # where an unchanged run would fall (from the runs before)
    verdict: str  # the rule's verdict against the window before it ("" for the first runs)
    valid: bool | None


def timeline(
    loaded: Sequence[Mapping[str, Any]], window: int = 10, rule: compare.Rule | None = None
) -> dict[str, list[Point]]:
    """Per benchmark: each run's median, the band of the runs before it, and the rule's verdict.

    ``loaded``: the runs oldest first, as :func:`pytest_trt.gate.runs.load_run` returns them."""
    rule = rule or compare.Rule()
    runs = [(_label(data), {r.key: r for r in results.results_from_run(data)}) for data in loaded]
    keys = sorted({k for _, side in runs for k in side})
    out: dict[str, list[Point]] = {}
    for key in keys:
        pts: list[Point] = []
        history: list[results.RunResult] = []
        for i, (label, side) in enumerate(runs):
            r = side.get(key)
            if r is None or r.median_s is None:
                continue
            band = None
            verdict = ""
            if len(history) >= 2:
                before = history[-window:]
                logs = np.log([h.median_s for h in before if h.median_s])
                sd = float(logs.std(ddof=1))
                centre = float(np.exp(logs.mean()))
                z = 2.0 * math.sqrt(1 + 1 / len(logs))  # ~95 % of a new unchanged run
                band = (centre * math.exp(-z * sd) * 1e3, centre * math.exp(z * sd) * 1e3)
                verdict = compare.compare_benchmark(key, before, [r], rule, k=len(keys)).verdict
            pts.append(Point(i, label, r.median_s * 1e3, band, verdict, r.valid))
            history.append(r)
        if pts:
            out[key] = pts
    return out


def _label(data: Mapping[str, Any]) -> str:
    commit = (data.get("commit_info") or {}).get("id") or ""
    return f"{str(data.get('datetime', ''))[:16]} {commit[:7]}".strip() or Path(str(data.get("_path"))).name
