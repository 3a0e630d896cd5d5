"""Image classification: MobileNetV2 and ResNet18-152 x precision x {static b1 latency, dynamic sweep}.

Reproduces the reference studies' classification tables: latency and throughput per precision and
inference batch, engine facts, and the closeness curve / top-k agreement against PyTorch fp32
(accuracy too, with ``--trt-dataset``).  On a GPU the static profile is built for batch 1 (latency)
and the dynamic profile (1/128/256) serves the batch sweep 1, 32, 64, 128, 256.
"""

import pytest

from pytest_trt.plugin.trt_run import TrtRun

IMAGENET_MODELS = [
    "mobilenet_v2",
    "efficientnet_lite0",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
]


@pytest.mark.trt_matrix(models=IMAGENET_MODELS, static_batches=[1])
def test_classification(trt_run: TrtRun) -> None:
    trt_run.run()


@pytest.mark.smoke
@pytest.mark.trt_matrix(
    models=["efficientnet_lite0"],
    batches=[8],
    backends=["onnxruntime", "tensorrt"],
    precisions=["fp32", "fp16"],
)
def test_pretrained_photos_smoke(trt_run: TrtRun) -> None:
    """ImageNet-trained EfficientNet-Lite0 on real photographs: top-1/top-5 agreement is gated for real.

    int8 runs in test_classification: onnxruntime's quantize_static recipe keeps only about half of the
    fp32 top-1 predictions on this model (the engine matches its Q/DQ graph; the recipe loses them), and
    its gate says so.
    """
    trt_run.run()


@pytest.mark.smoke
@pytest.mark.trt_matrix(
    models=["tinycnn", "digits_cnn"], batches=[1, 8], backends=["onnxruntime", "torch", "tensorrt"]
)
def test_classification_smoke(trt_run: TrtRun) -> None:
    """Small models on every precision recipe; digits_cnn is trained on real labels, so accuracy is real."""
    trt_run.run()
