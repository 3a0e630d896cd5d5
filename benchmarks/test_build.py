"""Build trade-offs: optimization level (build time, plan size, layers, latency, throughput) and
static vs dynamic profiles (memory during inference vs batch, throughput); every result carries the
engine/base ratios of layers, parameters and size.  Read with ``pytest-trt report`` (build time vs
optimization level, memory vs batch) or ``pytest-trt compare --by opt_level``.
"""

import pytest

from pytest_trt.plugin.trt_run import TrtRun


@pytest.mark.trt_matrix(
    models=["resnet50"],
    opt_levels=[0, 3, 5],
    profiles=["static"],
    batches=[1],
    backends=["tensorrt", "onnxruntime"],
    precisions=["fp16", "int8"],
)
def test_opt_levels(trt_run: TrtRun) -> None:
    trt_run.run()


@pytest.mark.trt_matrix(
    models=["resnet50"],
    profiles=["static", "dynamic"],
    batches=[1, 32, 128, 256],
    backends=["tensorrt"],
    precisions=["fp16"],
)
def test_static_vs_dynamic(trt_run: TrtRun) -> None:
    trt_run.run()


@pytest.mark.smoke
@pytest.mark.trt_matrix(
    models=["tinycnn"],
    opt_levels=[0, 1, 2, 3],
    profiles=["static", "dynamic"],
    batches=[1, 8],
    backends=["onnxruntime", "tensorrt"],
    precisions=["fp32"],
)
def test_build_smoke(trt_run: TrtRun) -> None:
    """onnxruntime maps opt levels to its graph optimization levels; static ONNX is exported per batch."""
    trt_run.run()
