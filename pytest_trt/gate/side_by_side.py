"""Runs side by side (``pytest-trt compare --by KEY``): one column per value of a machine_info or
extra_info key (a TensorRT or TensorRT-RTX version, a GPU), one row per case.

Two tables come out of the same files: the latency table (a metric of each timed benchmark) and the
build table, read from every case record, timed or not, so a builder that only builds (TensorRT-RTX
here) or refuses a recipe is shown with what it did: built or refused (with the builder's words),
build seconds, plan bytes, layers, and the change against the column before.  A case that one column
lacks is listed as absent, never dropped.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from pytest_trt.gate.runs import load_run
from pytest_trt.gate.runs import median as _median

# our prefix of a failed build's message ("TensorRT build failed for tinycnn <recipe> opt3: ")
_OUR_PREFIX = re.compile(r"^TensorRT build failed for \S+ \S+ opt\d+: ")
#: statuses in which the builder produced an engine (or plan) for the case
BUILT_STATUSES = ("built", "ok", "quality_failed", "run_failed", "oom")
ABSENT = "absent"


def _dig(d: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def group_value(data: Mapping[str, Any], extra: Mapping[str, Any], key: str) -> str:
    """The column a benchmark or case falls in: ``key`` looked up in pytest-trt's machine_info, then
    pytest-benchmark's, then the case's own record (dotted paths such as ``engine.backend_version``)."""
    mi = data.get("machine_info", {})
    for src in (mi.get("pytest_trt") or {}, mi, extra or {}):
        v = _dig(src, key)
        if v is not None:
            return str(v)
    return "?"


def column_order(values: Sequence[str]) -> list[str]:
    """Versions in release order (1.10 after 1.9), anything that is not a version after them, by name."""

    def key(v: str) -> tuple[int, Any, str]:
        try:
            return (0, Version(v), v)
        except InvalidVersion:
            return (1, 0, v)

    return sorted(set(values), key=key)


@dataclass(frozen=True)
class BuildCell:
    """What one column's builder did with one case."""

    status: str  # a case status (pytest_trt.gate.runs.STATUSES) or "absent"
    build_seconds: float | None = None
    plan_bytes: int | None = None
    layers: int | None = None
    recipe: str | None = None
    message: str | None = None  # the builder's or parser's words where it refused

    @property
    def built(self) -> bool:
        return self.status in BUILT_STATUSES and self.plan_bytes is not None

    @property
    def words(self) -> str | None:
        """The builder's own words from the message: without our "build failed for <case>" prefix, each
        error once, and a GPU-less machine's CUDA-runtime errors after the ones that say why."""
        if not self.message:
            return None
        text = _OUR_PREFIX.sub("", self.message, count=1)
        parts = list(dict.fromkeys(p.strip() for p in text.split("; ") if p.strip()))
        parts.sort(key=lambda p: "Cuda Runtime" in p)  # stable: the builder's order otherwise
        return "; ".join(parts)


@dataclass(frozen=True)
class BuildChange:
    """One case's change from the previous column that holds it."""

    status: str | None  # "build_failed -> built", or None if the status did not change
    plan_bytes: float | None  # relative change (0.05 = 5 % larger)
    build_seconds: float | None
    layers: int | None  # difference in layer count


def _cell(case: Mapping[str, Any]) -> BuildCell:
    ex = case.get("extra_info") or {}
    eng = ex.get("engine") or {}
    status = str(case.get("status") or ex.get("status") or "unknown")
    return BuildCell(
        status=status,
        build_seconds=eng.get("build_seconds"),
        plan_bytes=eng.get("plan_bytes"),
        layers=eng.get("layers"),
        recipe=(ex.get("recipe") or {}).get("name"),
        message=None if status in BUILT_STATUSES else case.get("message"),
    )


def _rel(new: float | None, old: float | None) -> float | None:
    return new / old - 1.0 if new is not None and old else None


def change(prev: BuildCell, cur: BuildCell) -> BuildChange:
    layers = cur.layers - prev.layers if cur.layers is not None and prev.layers is not None else None
    return BuildChange(
        status=None if prev.status == cur.status else f"{prev.status} -> {cur.status}",
        plan_bytes=_rel(cur.plan_bytes, prev.plan_bytes),
        build_seconds=_rel(cur.build_seconds, prev.build_seconds),
        layers=layers,
    )


def _merge_repeats(cells: Sequence[BuildCell]) -> BuildCell:
    """Several runs of one case in one column: the median build time, the last run's other facts."""
    last = cells[-1]
    secs = [c.build_seconds for c in cells if c.build_seconds is not None]
    return BuildCell(
        last.status, _median(secs) if secs else None, last.plan_bytes, last.layers, last.recipe, last.message
    )


def _rows(cells: Mapping[str, Mapping[str, list[BuildCell]]], columns: Sequence[str]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for key in sorted({k for col in cells.values() for k in col}):
        row = {c: _merge_repeats(cells[c][key]) if cells[c].get(key) else BuildCell(ABSENT) for c in columns}
        changes: dict[str, BuildChange] = {}
        prev: BuildCell | None = None
        for c in columns:
            cur = row[c]
            if cur.status == ABSENT:
                continue
            if prev is not None:
                changes[c] = change(prev, cur)
            prev = cur
        rows[key] = {"cells": row, "changes": changes}
    return rows


def side_by_side(paths: Sequence[Path], by: str, metric: str = "median") -> dict[str, Any]:
    """Latency (``metric``, ms) and builds of every file, one column per value of ``by``."""
    return side_by_side_runs([load_run(p) for p in paths], by, metric)


def side_by_side_runs(runs: Sequence[Mapping[str, Any]], by: str, metric: str = "median") -> dict[str, Any]:
    """:func:`side_by_side` of runs already read (``load_run``)."""
    lat: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    thr: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    builds: dict[str, dict[str, list[BuildCell]]] = defaultdict(lambda: defaultdict(list))
    recipes: dict[str, set[str]] = defaultdict(set)
    for data in runs:
        for b in data["benchmarks"]:
            ex = b.get("extra_info") or {}
            col, key = group_value(data, ex, by), b.get("fullname") or b["name"]
            val = (b.get("stats") or {}).get(metric)
            if val is not None:
                lat[col][key].append(float(val) * 1e3)
            if ex.get("throughput_samples_per_s"):
                thr[col][key].append(float(ex["throughput_samples_per_s"]))
            if (ex.get("recipe") or {}).get("name"):
                recipes[col].add(ex["recipe"]["name"])
        for case in (data.get("pytest_trt") or {}).get("cases", []):
            if case.get("status") == "skipped" or not case.get("nodeid"):
                continue  # deselected by the run's own options: nothing was asked of the builder
            ex = case.get("extra_info") or {}
            col = group_value(data, ex, by)
            builds[col][case["nodeid"]].append(_cell(case))
            if (ex.get("recipe") or {}).get("name"):
                recipes[col].add(ex["recipe"]["name"])
    columns = column_order([*lat, *builds])
    lat_rows = sorted({k for c in lat.values() for k in c})

    def cells(src: Mapping[str, Mapping[str, list[float]]], r: str) -> dict[str, float | None]:
        return {c: (_median(src[c][r]) if src.get(c, {}).get(r) else None) for c in columns}

    return {
        "by": by,
        "metric": metric,
        "columns": columns,
        "recipes": {c: sorted(recipes[c]) for c in columns},
        "rows": {r: cells(lat, r) for r in lat_rows},
        "throughput": {r: cells(thr, r) for r in lat_rows},
        "builds": _rows(builds, columns),
    }


def builds_jsonable(sbs: Mapping[str, Any]) -> dict[str, Any]:
    """The build table as plain JSON (NaN-free)."""

    def clean(d: Mapping[str, Any]) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}

    return {
        key: {
            "cells": {c: clean(asdict(cell)) for c, cell in row["cells"].items()},
            "changes": {c: clean(asdict(ch)) for c, ch in row["changes"].items()},
        }
        for key, row in sbs["builds"].items()
    }


__all__ = [
    "ABSENT",
    "BuildCell",
    "BuildChange",
    "builds_jsonable",
    "column_order",
    "group_value",
    "side_by_side",
    "side_by_side_runs",
]
