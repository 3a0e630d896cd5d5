"""The terminal summary: numeric batch order, skipped cases folded by reason, named speed-up baselines."""

from __future__ import annotations

from typing import Any

from pytest_trt.plugin import summary


def _rec(backend: str, precision: str, batch: int, status: str = "ok", **ei: Any) -> dict[str, Any]:
    return {
        "id": f"m-{backend}-{precision}-dynamic-b{batch}-opt3",
        "status": status,
        "message": ei.pop("message", None),
        "extra_info": {"model": "m", "backend": backend, "precision": precision, "profile": "dynamic",
                       "batch": batch, "opt_level": 3, "hw": None, **ei},
    }  # fmt: skip


def test_batches_sort_numerically() -> None:
    rows = [_rec("torch", "fp32", b) for b in (256, 32, 1, 128, 64)]
    assert [r["extra_info"]["batch"] for r in sorted(rows, key=summary.sort_key)] == [1, 32, 64, 128, 256]


def test_skips_fold_into_one_line_per_reason() -> None:
    rows = [
        _rec("tensorrt", "fp16", b, "skipped", message="Skipped: tensorrt unavailable: no module")
        for b in (1, 8)
    ]
    rows.append(_rec("torch", "int8", 1, "skipped", message="torch eager has no int8 engine path"))
    lines = summary.fold_skips(rows)
    assert len(lines) == 2
    assert lines[0].strip().startswith("2 skipped: tensorrt unavailable: no module (e.g. m-tensorrt-fp16")
    assert "1 skipped: torch eager has no int8" in lines[1]


def test_speedups_name_the_baseline_they_compare_with() -> None:
    graph = _rec("torch", "fp32", 8, throughput_samples_per_s=200.0, timing={"cuda_graph": True})
    eager = _rec("torch_eager", "fp32", 8, throughput_samples_per_s=100.0, timing={"cuda_graph": False})
    fp16 = _rec("torch", "fp16", 8, throughput_samples_per_s=400.0, timing={"cuda_graph": True})
    assert summary.anchor_label(graph["extra_info"]) == "torch fp32 + CUDA graph"
    assert summary.anchor_label(eager["extra_info"]) == "torch fp32 eager"
    # On a CPU (no graph), plain torch is the eager baseline.
    assert (
        summary.anchor_label({**graph["extra_info"], "timing": {"cuda_graph": False}}) == "torch fp32 eager"
    )
    out = summary.speedups([graph, eager, fp16])
    assert "  m-torch-fp16-dynamic-b8-opt3: 4.00x; p99/p50 -" in out["torch fp32 eager"]
    assert "  m-torch-fp16-dynamic-b8-opt3: 2.00x; p99/p50 -" in out["torch fp32 + CUDA graph"]
    assert "  m-torch-fp32-dynamic-b8-opt3: 2.00x; p99/p50 -" in out["torch fp32 eager"]


def _timed_rec(backend: str, precision: str, thr: float, mode: str = "fresh") -> dict[str, Any]:
    ei = {
        "backend": backend,
        "model": "m",
        "batch": 1,
        "hw": None,
        "profile": "dynamic",
        "precision": precision,
    }
    ei |= {"throughput_samples_per_s": thr, "timing": {"context": {"mode": mode}}}
    return {"id": f"m-{backend}-{precision}", "status": "ok", "extra_info": ei}


def test_lower_precisions_are_compared_with_their_own_backends_fp32() -> None:
    rows = [
        _timed_rec("torch", "fp32", 100.0),
        _timed_rec("torch", "fp16", 150.0),
        _timed_rec("onnxruntime", "int8", 80.0),
    ]
    assert summary.precision_speedups(rows) == ["  m-torch-fp16: 1.50x its backend's fp32"]


def test_the_summary_names_the_timing_contexts_that_produced_the_figures() -> None:
    assert summary.context_modes(
        [_timed_rec("torch", "fp32", 1.0), _timed_rec("onnxruntime", "fp32", 1.0, "shared")]
    ) == ("fresh+shared")
