"""Results: the per-case record (``extra_info``), the additions to pytest-benchmark's JSON, loading.

Every parameter enters through :func:`new_record` (the case and the settings), the engine facts
through :func:`engine_section`, timing, memory and telemetry through :func:`timing_section`, and
quality through ``TrtRun.evaluate``.  pytest-benchmark leaves failed tests out of its JSON, so the
plugin also writes every case -- built or not -- under the top-level ``pytest_trt`` key.
"""

from __future__ import annotations

import glob
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_trt.cache import atomic_write_text
from pytest_trt.measure import latency

if TYPE_CHECKING:  # kept out at run time: loading results files must not import torch (pytest-trt run)
    from pytest_trt.engines.protocol import EngineInfo
    from pytest_trt.measure import timing
    from pytest_trt.models.zoo import ModelSpec
    from pytest_trt.plugin.matrix import Case
    from pytest_trt.plugin.options import Settings

SCHEMA = "pytest-trt/1"
# built: a real plan was built (build time, plan size recorded) but cannot run on this machine.
STATUSES = ("pending", "ok", "quality_failed", "built", "build_failed", "oom", "run_failed", "skipped")


def new_record(case: Case, nodeid: str, spec: ModelSpec, settings: Settings) -> dict[str, Any]:
    return {
        "id": case.id,
        "nodeid": nodeid,
        "status": "pending",
        "message": None,
        "extra_info": {
            **case.params(),
            "task": spec.task,
            "device": settings.device.torch,
            "device_name": settings.device.name,
            "weights": None,  # filled once the model is loaded
            "status": "pending",
        },
    }


def engine_section(info: EngineInfo, onnx_facts: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "recipe": info.recipe.as_dict(),
        "engine": info.as_dict(),
        "build_warnings": list(info.warnings),
    }
    if onnx_facts:
        out["base"] = dict(onnx_facts)
        out["ratios"] = ratios(info, onnx_facts)
    return out


def ratios(info: EngineInfo, base: Mapping[str, Any]) -> dict[str, float | None]:
    """Engine/base ratios of layers, parameters and size (reference study's table)."""

    def r(a: Any, b: Any) -> float | None:
        return float(a) / float(b) if a and b else None

    return {
        "layers": r(info.layers, base.get("onnx_nodes")),
        "params": r(info.engine_params, base.get("onnx_params")),
        "size": r(info.plan_bytes, base.get("onnx_bytes")),
    }


def timing_section(
    m: timing.Measurement,
    cfg: timing.TimingConfig,
    batch: int,
    tel: Mapping[str, Any],
    info: EngineInfo,
    valid_ci: float = latency.VALID_CI,
) -> dict[str, Any]:
    lat = m.latency_ms()
    thr = latency.throughput(lat["model"], batch)
    if "e2e" in lat:
        thr["samples_per_s_e2e_median"] = latency.throughput(lat["e2e"], batch)["samples_per_s_median"]
    valid, reasons, notes = m.validity(
        clocks_changed=tel.get("clocks_changed"),
        throttle_reasons=tel.get("throttle_reasons") or (),
        io=info.io,
        valid_ci=valid_ci,
    )
    mem = {
        "device_memory_used_mb": tel.get("device_memory_used_mb"),
        "host_rss_mb": tel.get("host_rss_mb"),
        "torch_peak_allocated_mb": tel.get("torch_peak_allocated_mb"),
        "engine_device_memory_mb": info.device_memory_bytes / 2**20 if info.device_memory_bytes else None,
        "samples": tel.get("samples"),
        "period_ms": tel.get("period_ms"),
    }
    energy = {
        k: tel[k]
        for k in ("energy_j", "energy_j_from_power", "energy_per_inference_j", "inferences_per_j")
        if k in tel
    }
    return {
        "latency_ms": lat,
        "throughput": thr,
        "throughput_samples_per_s": thr["samples_per_s_median"],
        "timing": {
            "clock": m.clock,
            "rounds": len(m.model_s),
            "e2e_rounds": len(m.e2e_s),
            "warmup_iterations": m.warmup_iterations,
            "warmup_seconds": round(m.warmup_seconds, 4),
            "min_rounds": cfg.min_rounds,
            "min_time_s": cfg.min_time_s,
            "max_time_s": cfg.max_time_s,
            "target_ci": cfg.target_ci,
            "stopped_by": m.stopped_by,
            "samples_per_sync": m.chunk,
            "inferences_per_sample": m.group,
            "median_ci95_rel": lat["model"].get("median_ci95_rel"),
            "wall_seconds": round(m.wall_seconds, 3),
            "cuda_graph": m.cuda_graph,
            "pedantic": {"iterations": 1, "warmup_rounds": 0},
        },
        "validity": {"valid": valid, "reasons": reasons, "notes": notes},
        "valid": valid,
        "memory": mem,
        "telemetry": {
            k: tel.get(k)
            for k in ("sm_clock_mhz", "mem_clock_mhz", "power_w", "clocks_changed", "throttle_reasons")
        },
        "energy": energy or None,
        "build_warnings": list(info.warnings),
    }


def add_percentiles(benchmarks: Sequence[Any], output_json: dict[str, Any]) -> None:
    """Add p50/p90/p95/p99 (seconds, like the other stats) to each benchmark's ``stats``."""
    by_name = {b.fullname: b for b in benchmarks}
    for bj in output_json.get("benchmarks", []):
        b = by_name.get(bj.get("fullname"))
        data = list(getattr(getattr(b, "stats", None), "data", []) or [])
        if len(data) >= 2:
            xs = sorted(data)
            for q in latency.PERCENTILES:
                if len(xs) >= latency.MIN_SAMPLES_FOR[q]:
                    bj["stats"][f"p{q}"] = latency.percentile(xs, q)


def session_section(
    records: Iterable[Mapping[str, Any]],
    settings: Settings,
    cache_summary: str,
    timeline: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    out = {
        "schema": SCHEMA,
        "settings": settings.as_dict(),
        "cache": cache_summary,
        "cases": [_jsonable(r) for r in records],
    }
    if timeline is not None:
        out["timeline"] = _jsonable(timeline)
    return out


def _jsonable(obj: Any) -> Any:
    """Replace NaN/inf with None so the file is strict JSON (pytest-benchmark's loader is strict)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def sanitize_extra_info(output_json: dict[str, Any]) -> None:
    for bj in output_json.get("benchmarks", []):
        bj["extra_info"] = _jsonable(bj.get("extra_info", {}))


def write_records(path: Path, payload: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(_jsonable(payload), indent=1, default=str))


class ResultsError(ValueError):
    """A results file is unreadable or not pytest-benchmark/pytest-trt JSON; the message names it."""


def expand_paths(patterns: Iterable[str]) -> list[Path]:
    """Result files named by paths or globs (a glob matching nothing is an error naming it)."""
    out: list[Path] = []
    for p in patterns:
        matches = sorted(glob.glob(p)) if any(ch in p for ch in "*?[") else [p]
        if not matches:
            raise ResultsError(f"{p}: no files match this pattern")
        out.extend(Path(m) for m in matches)
    return out


def load_run(path: Path | str) -> dict[str, Any]:
    """Load one pytest-benchmark JSON file, checking it is one (with a message naming the file)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{p}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{p}: not valid JSON ({exc})") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("benchmarks"), list)
        or "machine_info" not in data
    ):
        raise ResultsError(
            f"{p}: not a pytest-benchmark JSON file (expected 'machine_info' and a 'benchmarks' list; "
            "write it with pytest --benchmark-json=FILE)"
        )
    trt = data.get("pytest_trt")
    if trt is not None and str(trt.get("schema", "")).split("/")[0] != SCHEMA.split("/")[0]:
        raise ResultsError(
            f"{p}: pytest_trt section has unknown schema {trt.get('schema')!r} (expected {SCHEMA})"
        )
    data["_path"] = str(p)
    return data


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else math.nan
