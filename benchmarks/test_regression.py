"""Image-to-field regression: U-Net and Attention U-Net (defined in pytest_trt.models.networks).

As in the reference study's soot-temperature application, the output is a dense field; quality is the
closeness curve against the PyTorch fp32 baseline and RMSE (differences beyond +-100 excluded) of the
engine against the baseline (and against ground truth when a dataset provides it).
"""

import pytest

from pytest_trt.plugin.trt_run import TrtRun


@pytest.mark.trt_matrix(models=["unet", "attention_unet"], hws=[256], static_batches=[1], batches=[1, 8, 32])
def test_regression(trt_run: TrtRun) -> None:
    trt_run.run()


@pytest.mark.smoke
@pytest.mark.trt_matrix(
    models=["unet_small"], hws=[64], batches=[1, 4], backends=["onnxruntime", "torch", "tensorrt"]
)
def test_regression_smoke(trt_run: TrtRun) -> None:
    trt_run.run()
