"""2:4 structured sparsity (the pruning study's counterpart): each model dense and pruned to 2:4.

``<model>_sparse24`` is the model with its weights pruned by NVIDIA ModelOpt (magnitude, no fine-tuning).
Its engines are judged by the usual gates against the *pruned* PyTorch model; what pruning cost against
the dense model is in ``extra_info.quality.sparsity`` (``pruning_top1_agreement``, ``pruning_rel_error``,
``pruning_accuracy_drop`` with labels, the share of zero weights, layers holding the pattern, ONNX bytes
raw and deflated) and gates only if you ask: ``--trt-gate '*:pruning_top1_agreement>=0.9'``.  TensorRT
builds the pruned graph with ``SPARSE_WEIGHTS`` (TensorRT-RTX builds it without a GPU); onnxruntime and
OpenVINO run it dense.  ``pytest-trt report`` puts sparsity against quality and speed.
"""

import pytest

from pytest_trt.plugin.trt_run import TrtRun


@pytest.mark.trt_matrix(
    models=["efficientnet_lite0", "efficientnet_lite0_sparse24", "resnet50", "resnet50_sparse24"],
    batches=[1, 32],
    profiles=["dynamic"],
)
def test_sparsity(trt_run: TrtRun) -> None:
    trt_run.run()


@pytest.mark.smoke
@pytest.mark.trt_matrix(
    models=["efficientnet_lite0", "efficientnet_lite0_sparse24"],
    batches=[8],
    profiles=["dynamic"],
    precisions=["fp32"],
)
def test_sparsity_smoke(trt_run: TrtRun) -> None:
    """EfficientNet-Lite0 with its ImageNet weights, dense and 2:4-pruned, on real photographs."""
    trt_run.run()
    sp = trt_run.quality.get("sparsity")
    if trt_run.case.model.endswith("_sparse24"):
        assert sp is not None and sp["layers_2to4"] > 0 and 0 < sp["zero_fraction"] < 0.6
        assert sp["pruning_top1_agreement"] <= 1.0
    else:
        assert sp is None
