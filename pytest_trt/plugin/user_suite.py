"""The benchmark ``pytest --trt-onnx model.onnx`` runs when no test path is given (collected by path,
so its name deliberately matches no ``python_files`` pattern): the usual matrix over every --trt-onnx
file.  Ids name the file: ``model.onnx-onnxruntime-fp16-dynamic-b8-opt3``."""

import pytest

from pytest_trt.plugin.trt_run import TrtRun


@pytest.mark.trt_matrix(tag="cli")
def test_onnx_file(trt_run: TrtRun) -> None:
    trt_run.run()
