"""Result records: the per-case record (``extra_info``) and the additions to pytest-benchmark's JSON.

Every parameter enters through :func:`new_record` (the case and the settings), the engine facts
through :func:`engine_section`, timing, memory and telemetry through :func:`timing_section`, and
quality through ``TrtRun.evaluate``.  pytest-benchmark leaves failed tests out of its JSON, so the
plugin also writes every case -- built or not -- under the top-level ``pytest_trt`` key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from pytest_trt.gate.runs import SCHEMA, jsonable
from pytest_trt.measure import latency

if TYPE_CHECKING:  # kept out at run time: loading results files must not import torch (pytest-trt run)
    from pytest_trt.engines.protocol import EngineInfo
    from pytest_trt.measure import timing
    from pytest_trt.models.zoo import ModelSpec
    from pytest_trt.plugin.matrix import Case
    from pytest_trt.plugin.settings import Settings


class CaseRecord(TypedDict):
    """One case as the session keeps it and ``--trt-json`` writes it (``pytest_trt.cases``); its
    ``extra_info`` is what pytest-benchmark's JSON carries for the same case."""

    id: str
    nodeid: str
    status: str  # one of pytest_trt.gate.runs.STATUSES
    message: str | None
    extra_info: dict[str, Any]


def new_record(case: Case, nodeid: str, spec: ModelSpec, settings: Settings) -> CaseRecord:
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
        cpu_steal_pct=tel.get("cpu_steal_pct"),
    )
    mem = {
        "device_memory_used_mb": tel.get("device_memory_used_mb"),
        "host_rss_mb": tel.get("host_rss_mb"),
        "torch_peak_allocated_mb": tel.get("torch_peak_allocated_mb"),
        "engine_device_memory_mb": info.device_memory_bytes / 2**20 if info.device_memory_bytes else None,
        "samples": tel.get("samples"),
        "period_ms": tel.get("period_ms"),
        "cpu_steal_pct": tel.get("cpu_steal_pct"),
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
            "extra_time_s": cfg.extra_time_s,
            "target_ci": cfg.target_ci,
            "stopped_by": m.stopped_by,
            "retaken": m.retaken or None,
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
    sentinel: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    out = {
        "schema": SCHEMA,
        "settings": settings.as_dict(),
        "cache": cache_summary,
        "cases": [jsonable(r) for r in records],
        # the first timed case timed again at the end: its drift, and whether the run stayed within noise
        "sentinel": jsonable(sentinel) if sentinel is not None else None,
    }
    if timeline is not None:
        out["timeline"] = jsonable(timeline)
    return out


def sanitize_extra_info(output_json: dict[str, Any]) -> None:
    for bj in output_json.get("benchmarks", []):
        bj["extra_info"] = jsonable(bj.get("extra_info", {}))
