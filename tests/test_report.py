"""`pytest-trt report` on a real CPU run: HTML with embedded plots, Markdown, PNG files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_trt.cli import main
from tests.conftest import fast_args


def test_report_from_a_real_run(pytester: pytest.Pytester, shared_cache: Path, tmp_path: Path) -> None:
    pytester.makepyfile(
        test_r="""
import pytest
@pytest.mark.trt_matrix(models=["tinycnn"], backends=["onnxruntime", "torch"], precisions=["fp32", "int8"],
                        batches=[1, 4], opt_levels=[1, 3])
def test_r(trt_run):
    trt_run.run()
"""
    )
    run = pytester.path / "run.json"
    r = pytester.runpytest(*fast_args(shared_cache), f"--benchmark-json={run}")
    assert r.ret == 0
    out = tmp_path / "report"
    assert main(["report", str(run), "--out", str(out)]) == 0
    for name in ("throughput_vs_batch", "latency_by_precision", "closeness_curves", "memory_vs_batch"):
        png = out / f"{name}.png"
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4 and "tinycnn-onnxruntime-int8" in html
    md = (out / "report.md").read_text()
    assert "![closeness_curves](closeness_curves.png)" in md and "| result | status | recipe |" in md


def test_report_rejects_foreign_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("[]")
    assert main(["report", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "x.json: not a pytest-benchmark JSON file" in capsys.readouterr().err


def _row(backend: str, precision: str, thr: float, device: str = "cpu", **extra: object) -> dict:
    return {
        "_name": f"m-{backend}-{precision}",
        "model": "m",
        "batch": 64,
        "hw": None,
        "backend": backend,
        "precision": precision,
        "device": device,
        "throughput_samples_per_s": thr,
        "latency_ms": {
            "model": {
                "median": 64e3 / thr,
                "mean": 64e3 / thr,
                "max": 1.2 * 64e3 / thr,
                "p50": 64e3 / thr,
                "p99": 1.1 * 64e3 / thr,
            }
        },
        **extra,
    }


def test_framework_table_compares_with_pytorch_on_the_same_device() -> None:
    from pytest_trt.report.tables import frameworks_table

    rows = [
        _row("torch", "fp32", 100.0, "cuda"),  # GPU baseline
        _row("tensorrt", "fp16", 400.0, "cuda", engine={"build_seconds": 12.0}),
        # OpenVINO in a CUDA session ran on the CPU: no PyTorch CPU result here, so no speed-up claimed
        _row("openvino", "fp32", 50.0, "cuda", engine={"openvino_device": "CPU", "build_seconds": 0.3},
             throughput={"async": {"samples_per_s": 61.0}}),
    ]  # fmt: skip
    t = frameworks_table(rows)
    by = {r[3]: r for r in t[1:]}
    assert by["tensorrt"][8] == "4.00x" and by["tensorrt"][2] == "cuda" and by["tensorrt"][9] == "12.00"
    assert by["openvino"][2] == "cpu" and by["openvino"][8] == "-" and by["openvino"][10] == "61.0"
    rows.append(_row("torch_eager", "fp32", 25.0, "cpu"))  # now PyTorch has run on the CPU too
    by = {r[3]: r for r in frameworks_table(rows)[1:]}
    assert by["openvino"][8] == "2.00x"


def test_sparsity_table_sets_cost_against_speed(tmp_path: Path) -> None:
    import json

    from pytest_trt.report.build import write_report
    from pytest_trt.report.tables import sparsity_table

    sp = {"zero_fraction": 0.47, "layers_2to4": 29, "eligible_layers": 33, "pruning_top1_agreement": 0.25,
          "pruning_rel_error": 1.4, "onnx": {"deflated_bytes": 2**21}, "dense_onnx": {"deflated_bytes": 2**22}}  # fmt: skip
    rows = [_row("onnxruntime", "fp32", 100.0), _row("onnxruntime", "fp32", 125.0, quality={"sparsity": sp})]
    rows[1]["model"] = "m_sparse24"
    t = sparsity_table(rows)
    assert len(t) == 2 and t[1][1] == "47.0" and t[1][2] == "29/33" and t[1][3] == "4.0 -> 2.0"
    assert t[1][5] == "0.250" and t[1][9] == "1.25x"  # 25 % faster than its dense twin
    f = tmp_path / "r.json"
    benches = [{"name": r["_name"], "fullname": r["_name"], "stats": {}, "extra_info": r} for r in rows]
    f.write_text(json.dumps({"machine_info": {}, "benchmarks": benches}))
    out = write_report([f], tmp_path / "rep")
    assert out["sparsity_vs_quality"].stat().st_size > 5_000
    assert "## 2:4 sparsity" in (tmp_path / "rep" / "report.md").read_text()
