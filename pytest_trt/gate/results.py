"""Reading stored runs for the gate: one :class:`RunResult` per benchmark and file, every value checked
(a number where a number belongs, one entry per benchmark, one file per run), so a bad file is an
error naming it instead of a verdict on nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_trt.gate.runs import ResultsError, load_run

ENV_KEYS = (
    "gpu",
    "driver",
    "cuda_driver",
    "torch_cuda_runtime",
    "trt_version",
    "tensorrt_rtx_version",
    "onnxruntime",
    "torch",
)
QUALITY_METRICS = (
    "closeness@0.01",
    "closeness@0.1",
    "closeness@1",
    "top1_agreement",
    "accuracy_top1",
    "seg_closeness",
)


@dataclass
class RunResult:
    key: str
    file: str
    status: str
    median_s: float | None
    p99_s: float | None
    mean_s: float | None
    min_s: float | None
    throughput: float | None
    valid: bool | None
    quality: dict[str, float]
    recipe: str | None
    env: dict[str, Any]
    extra: dict[str, Any]

    def stat(self, name: str) -> float | None:
        return {"median": self.median_s, "p99": self.p99_s, "mean": self.mean_s, "min": self.min_s}[name]


def quality_numbers(extra: Mapping[str, Any]) -> dict[str, float]:
    from pytest_trt.quality.gates import lookup

    q = extra.get("quality") or {}
    out = {}
    for name in QUALITY_METRICS:
        v = lookup(q, name)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            out[name] = float(v)
    return out


def _env(machine_info: Mapping[str, Any]) -> dict[str, Any]:
    mi = machine_info.get("pytest_trt") or {}
    return {k: mi.get(k) for k in ENV_KEYS}


def _numbers(d: Any, where: str, keys: Sequence[str]) -> Mapping[str, Any]:
    """``d`` (an object or nothing), its ``keys`` checked to be numbers or null: a value of another
    type is an error naming the file, the benchmark and the field, not a traceback later."""
    if d is None:
        return {}
    if not isinstance(d, Mapping):
        raise ResultsError(f"{where} is {type(d).__name__}, not an object")
    for k in keys:
        v = d.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ResultsError(f"{where}.{k} is {v!r}; a number (seconds) or null was expected")
    return d


def results_from_run(data: Mapping[str, Any]) -> list[RunResult]:
    """Per-result summaries of one file; failed cases come from the ``pytest_trt`` section."""
    env = _env(data.get("machine_info", {}))
    path = str(data.get("_path", "?"))
    out: dict[str, RunResult] = {}
    for b in data["benchmarks"]:
        if not isinstance(b, Mapping):
            raise ResultsError(f"{path}: a benchmark entry is {type(b).__name__}, not an object")
        key = b.get("fullname") or b.get("name")
        if not key or not isinstance(key, str):
            raise ResultsError(f"{path}: a benchmark entry has no fullname/name")
        if key in out:
            raise ResultsError(
                f"{path}: benchmark {key!r} is listed twice; a file holds one result per benchmark "
                "(merge shards with pytest-trt merge)"
            )
        st = _numbers(b.get("stats"), f"{path}: {key}: stats", ("median", "mean", "min", "max", "p99"))
        ex = b.get("extra_info") or {}
        if not isinstance(ex, Mapping):
            raise ResultsError(f"{path}: {key}: extra_info is {type(ex).__name__}, not an object")
        lat = _numbers(
            (ex.get("latency_ms") or {}).get("model"), f"{path}: {key}: latency_ms.model", ("p99",)
        )
        _numbers(ex, f"{path}: {key}: extra_info", ("throughput_samples_per_s",))
        p99 = (
            st.get("p99")
            if st.get("p99") is not None
            else (lat["p99"] / 1e3 if lat.get("p99") is not None else None)
        )
        out[key] = RunResult(
            key=key,
            file=path,
            status=ex.get("status", "ok"),
            median_s=st.get("median"),
            p99_s=p99,
            mean_s=st.get("mean"),
            min_s=st.get("min"),
            throughput=ex.get("throughput_samples_per_s"),
            valid=ex.get("valid"),
            quality=quality_numbers(ex),
            recipe=(ex.get("recipe") or {}).get("name"),
            env=env,
            extra=dict(ex),
        )
    for case in (data.get("pytest_trt") or {}).get("cases", []):
        key = case.get("nodeid")
        if key and key not in out and case.get("status") != "skipped":
            ex = case.get("extra_info") or {}
            out[key] = RunResult(
                key,
                path,
                case.get("status", "unknown"),
                None,
                None,
                None,
                None,
                None,
                None,
                quality_numbers(ex),
                (ex.get("recipe") or {}).get("name"),
                env,
                ex,
            )
    return list(out.values())


def load_side(paths: Sequence[Path]) -> dict[str, list[RunResult]]:
    """Every run of one side by benchmark; the same file (or the same content) given twice is an error,
    as it would count one run as two independent ones."""
    import hashlib

    seen: dict[str, Path] = {}
    for p in paths:
        try:
            digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
        except OSError:
            continue  # load_run names the unreadable file
        if digest in seen:
            raise ResultsError(
                f"{p} and {seen[digest]} are the same run (identical content); give each run once"
            )
        seen[digest] = Path(p)
    side: dict[str, list[RunResult]] = defaultdict(list)
    for p in paths:
        for r in results_from_run(load_run(p)):
            side[r.key].append(r)
    return dict(side)
