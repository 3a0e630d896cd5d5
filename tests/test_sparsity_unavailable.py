"""2:4 variants where ModelOpt cannot prune: a reported result with what to install, never a crash."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import fast_args, load_json

BENCH = """
import pytest

@pytest.mark.trt_matrix(models=["tinycnn", "tinycnn_sparse24"], batches=[2], profiles=["dynamic"], precisions=["fp32"])
def test_s(trt_run):
    trt_run.run()
"""


def test_without_modelopt_the_pruned_variant_skips_naming_the_install_and_the_dense_model_runs(
    pytester: pytest.Pytester, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "modelopt", None)  # `import modelopt` fails, find_spec says absent
    pytester.makepyfile(test_s=BENCH)
    r = pytester.runpytest_inprocess(*fast_args(shared_cache, "--trt-backend=onnxruntime"), "-rs")
    r.assert_outcomes(passed=1, skipped=1)
    skipped = [line for line in r.stdout.lines if line.startswith("SKIPPED")]
    assert len(skipped) == 1 and "tinycnn_sparse24: 2:4 pruning needs NVIDIA ModelOpt" in skipped[0]
    assert "pip install 'pytest-trt[modelopt]'" in skipped[0]


def test_a_modelopt_that_fails_to_import_its_pruning_is_a_build_failure_with_the_reason(
    pytester: pytest.Pytester, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("modelopt", exc_type=ImportError)
    monkeypatch.setitem(sys.modules, "modelopt.torch.sparsity", None)  # installed, but its pruning breaks
    pytester.makepyfile(test_s=BENCH)
    out = pytester.path / "s.json"
    r = pytester.runpytest_inprocess(
        *fast_args(shared_cache, "--trt-backend=onnxruntime", f"--trt-json={out}")
    )
    r.assert_outcomes(passed=1, failed=1)
    assert "Traceback" not in r.stdout.str()
    cases = {c["extra_info"]["model"]: c for c in load_json(out)["cases"]}
    assert cases["tinycnn"]["status"] == "ok"
    assert cases["tinycnn_sparse24"]["status"] == "build_failed"
    assert "ModelOpt" in cases["tinycnn_sparse24"]["message"]
