"""Semantic segmentation: DeepLabV3-ResNet50, FCN-ResNet50, LRASPP-MobileNetV3 (torchvision).

Engines get a dynamic height/width profile (min/opt/max 320/640/960 by default, ``--trt-dynamic-hw``)
and run at several resolutions (``--trt-hw``; default 512, the real-time camera demo's size).
Quality: segmentation closeness (pixels of the baseline's foreground that keep their label) and
IoU/Dice of the foreground mask against the PyTorch fp32 baseline.
"""

import pytest

from pytest_trt.plugin.trt_run import TrtRun

SEG_MODELS = ["deeplabv3_resnet50", "fcn_resnet50", "lraspp_mobilenet_v3_large"]


@pytest.mark.slow
@pytest.mark.trt_matrix(
    models=SEG_MODELS, dynamic_hw=True, hws=[320, 512, 640, 960], static_batches=[1], batches=[1, 4, 16]
)
def test_segmentation(trt_run: TrtRun) -> None:
    trt_run.run()


@pytest.mark.smoke
@pytest.mark.trt_matrix(
    models=["lraspp_mobilenet_v3_large"],
    hws=[128],
    batches=[1],
    backends=["onnxruntime", "torch", "tensorrt"],
    profiles=["dynamic"],
)
def test_segmentation_smoke(trt_run: TrtRun) -> None:
    """The smallest torchvision segmenter at reduced resolution: minutes on two CPU cores."""
    trt_run.run()
