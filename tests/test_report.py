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
