"""Cross-framework comparison: MobileNetV2 at batch 64 (as in the references) on torch eager, torch.compile,
onnxruntime, OpenVINO and TensorRT.  The terminal summary prints each one's speed-up against torch fp32
eager and its p99/p50 ratio; ``pytest-trt report`` tabulates speed-ups against PyTorch on the same
device with p50/p99, build/compile time and (OpenVINO) async throughput.
"""

import pytest

from pytest_trt.plugin.trt_run import TrtRun


@pytest.mark.trt_matrix(
    models=["mobilenet_v2"],
    batches=[64],
    profiles=["dynamic"],
    backends=["torch", "torch_eager", "torch_compile", "onnxruntime", "openvino", "tensorrt"],
    precisions=["fp32", "fp16", "int8"],
)
def test_frameworks(trt_run: TrtRun) -> None:
    trt_run.run()
