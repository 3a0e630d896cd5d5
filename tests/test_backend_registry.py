"""Backends are added through the ``pytest_trt_register_backends`` hook; the old import path still works."""

from __future__ import annotations

import pytest

from pytest_trt.engines import registry

CONFTEST = """
from pytest_trt.engines.onnxrt.backend import OnnxRuntimeBackend

class Mine(OnnxRuntimeBackend):
    name = "mine"

def pytest_trt_register_backends(register):
    register("mine", Mine)
"""

BENCH = """
import pytest

@pytest.mark.trt_matrix(models=["tinycnn"], batches=[1], precisions=["fp32"])
def test_x(trt_run):
    trt_run.run()
"""


def test_a_conftest_hook_adds_a_backend_that_the_option_accepts(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_x=BENCH)
    result = pytester.runpytest_inprocess("--trt-backend=mine", "--co", "-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*tinycnn-mine-fp32*"])


def test_an_unregistered_backend_is_a_usage_error_naming_the_registered_ones(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_x=BENCH)
    result = pytester.runpytest_inprocess("--trt-backend=nonesuch", "--co", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--trt-backend*nonesuch*valid values:*onnxruntime*"])


def test_the_old_import_path_still_registers(monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_trt.backends as old

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    old.register("legacy", "tests.fault_backend:Corrupting")
    assert "legacy" in registry.names()
