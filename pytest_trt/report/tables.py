"""The report's tables: every result, the framework comparison (speed-up against PyTorch on the same
device, p50/p99, compile time, async throughput) and sparsity against quality and speed."""

from __future__ import annotations

import math
from typing import Any


def results_table(rows: list[dict[str, Any]]) -> list[list[str]]:
    def f(x: Any, spec: str = ".3f") -> str:
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)

    out = [
        [
            "result",
            "status",
            "recipe",
            "median ms",
            "p99 ms",
            "samples/s",
            "closeness@0.1 %",
            "valid",
            "weights",
        ]
    ]
    for r in sorted(rows, key=lambda r: str(r.get("_name"))):
        lat = (r.get("latency_ms") or {}).get("model") or {}
        out.append(
            [
                str(r.get("_name")),
                str(r.get("status")),
                str((r.get("recipe") or {}).get("name", "-")),
                f(lat.get("median")),
                f(lat.get("p99")),
                f(r.get("throughput_samples_per_s"), ".1f"),
                f(((r.get("quality") or {}).get("closeness") or {}).get("0.1"), ".2f"),
                "-" if r.get("valid") is None else str(r.get("valid")),
                str(r.get("weights", "-")),
            ]
        )
    return out


def _f(x: Any, spec: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def run_device(r: dict[str, Any]) -> str:
    """Where a result really ran: OpenVINO's own device, onnxruntime's providers, else the session's."""
    eng = r.get("engine") or {}
    if eng.get("openvino_device"):
        return "cuda" if eng["openvino_device"] == "GPU" and r.get("device") != "cpu" else "cpu"
    providers = eng.get("providers")
    if providers is not None and "CUDAExecutionProvider" not in providers:
        return "cpu"
    return str(r.get("device") or "cpu").split(":")[0]


def _timed(r: dict[str, Any]) -> bool:
    return bool(r.get("throughput_samples_per_s") and (r.get("latency_ms") or {}).get("model"))


def frameworks_table(rows: list[dict[str, Any]]) -> list[list[str]]:
    """Each timed result against PyTorch fp32 on the same device, model, batch and resolution (eager where
    measured, else torch with a CUDA graph), with p50/p99, build or compile time and async throughput."""
    base: dict[tuple[Any, ...], float] = {}
    for r in rows:
        if _timed(r) and r.get("precision") == "fp32" and r.get("backend") in ("torch_eager", "torch"):
            key = (r.get("model"), r.get("batch"), r.get("hw"), run_device(r))
            if r["backend"] == "torch_eager" or key not in base:
                base[key] = float(r["throughput_samples_per_s"])
    out = [
        [
            "model",
            "batch",
            "device",
            "backend",
            "precision",
            "p50 ms",
            "p99 ms",
            "samples/s",
            "speed-up vs PyTorch fp32",
            "build/compile s",
            "async samples/s",
        ]
    ]
    for r in sorted(
        (r for r in rows if _timed(r)),
        key=lambda r: (
            str(r.get("model")),
            int(r.get("batch") or 0),
            run_device(r),
            str(r.get("backend")),
            str(r.get("precision")),
        ),
    ):
        lat = r["latency_ms"]["model"]
        thr = float(r["throughput_samples_per_s"])
        b = base.get((r.get("model"), r.get("batch"), r.get("hw"), run_device(r)))
        eng = r.get("engine") or {}
        asy = (r.get("throughput") or {}).get("async") or {}
        out.append(
            [
                str(r.get("model")),
                str(r.get("batch")),
                run_device(r),
                str(r.get("backend")),
                str(r.get("precision")),
                _f(lat.get("p50", lat.get("median"))),
                _f(lat.get("p99")),
                _f(thr, ".1f"),
                f"{thr / b:.2f}x" if b else "-",
                _f(eng.get("build_seconds") if not eng.get("cached") else None, ".2f"),
                _f(asy.get("samples_per_s"), ".1f"),
            ]
        )
    return out if len(out) > 1 and any(row[8] != "-" for row in out[1:]) else []


def sparsity_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pruned results, each with the median latency of its dense twin (same backend/precision/batch)."""
    dense = {
        (r.get("model"), r.get("backend"), r.get("precision"), r.get("batch"), r.get("hw")): r
        for r in rows
        if _timed(r)
    }
    out = []
    for r in rows:
        sp = (r.get("quality") or {}).get("sparsity")
        if not sp:
            continue
        twin = dense.get(
            (
                str(r.get("model")).removesuffix("_sparse24"),
                r.get("backend"),
                r.get("precision"),
                r.get("batch"),
                r.get("hw"),
            )
        )
        med = ((r.get("latency_ms") or {}).get("model") or {}).get("median")
        twin_med = ((twin or {}).get("latency_ms") or {}).get("model", {}).get("median") if twin else None
        out.append(
            {"row": r, "sparsity": sp, "speedup_vs_dense": twin_med / med if med and twin_med else None}
        )
    return out


def sparsity_table(rows: list[dict[str, Any]]) -> list[list[str]]:
    items = sparsity_rows(rows)
    if not items:
        return []
    out = [
        [
            "result",
            "zero weights %",
            "2:4 layers",
            "ONNX deflated MB (dense -> 2:4)",
            "plan bytes",
            "pruning top-1 agreement",
            "pruning accuracy drop",
            "pruning rel. error",
            "median ms",
            "speed vs dense",
        ]
    ]
    for it in items:
        r, sp = it["row"], it["sparsity"]
        onnx, dense = sp.get("onnx") or {}, sp.get("dense_onnx") or {}
        size = (
            f"{dense['deflated_bytes'] / 2**20:.1f} -> {onnx['deflated_bytes'] / 2**20:.1f}"
            if onnx and dense
            else "-"
        )
        out.append(
            [
                str(r.get("_name")),
                _f(100 * sp.get("zero_fraction", math.nan), ".1f"),
                f"{sp.get('layers_2to4')}/{sp.get('eligible_layers')}",
                size,
                str((r.get("engine") or {}).get("plan_bytes") or "-"),
                _f(sp.get("pruning_top1_agreement"), ".3f"),
                _f(sp.get("pruning_accuracy_drop"), ".3f"),
                _f(sp.get("pruning_rel_error"), ".3f"),
                _f(((r.get("latency_ms") or {}).get("model") or {}).get("median")),
                f"{it['speedup_vs_dense']:.2f}x" if it["speedup_vs_dense"] else "-",
            ]
        )
    return out


def markdown(table: list[list[str]]) -> list[str]:
    if not table:
        return []
    return [
        "| " + " | ".join(table[0]) + " |",
        "|" + "---|" * len(table[0]),
        *("| " + " | ".join(row) + " |" for row in table[1:]),
    ]


def html_table(table: list[list[str]]) -> str:
    import html

    return (
        "<table>"
        + "".join(
            "<tr>"
            + "".join(
                f"<{'th' if i == 0 else 'td'}>{html.escape(c)}</{'th' if i == 0 else 'td'}>" for c in row
            )
            + "</tr>"
            for i, row in enumerate(table)
        )
        + "</table>"
    )


def memory_mb(r: dict[str, Any]) -> dict[str, Any]:
    """Memory in use during timing, MB (``mean``, ``max``): the device's, else the host's RSS where
    there is no GPU; empty when neither was sampled."""
    mem = r.get("memory") or {}
    for key in ("device_memory_used_mb", "host_rss_mb"):
        v = mem.get(key)
        if isinstance(v, dict) and v.get("max") is not None:
            return v
    return {}


def detection_table(rows: list[dict[str, Any]]) -> list[list[str]]:
    """Detectors and instance segmenters, the reference thesis's table: build time, engine size, layers,
    mAP (boxes and masks, against labels and against fp32's own detections), memory, throughput and the
    post-processing stage; empty when no result is a detector's."""
    det = [r for r in rows if isinstance((r.get("quality") or {}).get("detection"), dict)]
    if not det:
        return []
    head = [
        "result",
        "status",
        "build s",
        "engine MB",
        "layers",
        "mAP50",
        "mAP50-95",
        "mask mAP50",
        "mask mAP50-95",
        "agreement mAP50-95",
        "mean/max memory MB",
        "samples/s",
        "post-processing ms (host/device)",
    ]
    out = [head]
    for r in sorted(det, key=lambda r: str(r.get("_name"))):
        q, eng, post = r["quality"]["detection"], r.get("engine") or {}, r.get("postprocess_ms") or {}
        mem = memory_mb(r)
        plan = eng.get("plan_bytes")
        out.append(
            [
                str(r.get("_name")),
                str(r.get("status")),
                _f(eng.get("build_seconds"), ".2f"),
                _f(plan / 1e6 if plan else None, ".2f"),
                _f(eng.get("layers"), "d") if isinstance(eng.get("layers"), int) else "-",
                _f(q.get("map50")),
                _f(q.get("map50_95")),
                _f(q.get("mask_map50")),
                _f(q.get("mask_map50_95")),
                _f(q.get("agreement_mask_map50_95", q.get("agreement_map50_95"))),
                f"{_f(mem.get('mean'), '.0f')}/{_f(mem.get('max'), '.0f')}",
                _f(r.get("throughput_samples_per_s"), ".1f"),
                f"{_f(post.get('host'), '.2f')}/{_f(post.get('device'), '.2f')}",
            ]
        )
    return out
