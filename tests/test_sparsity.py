"""2:4 sparsity: the pattern check, ModelOpt's pruning, the model variant, and its verdicts both ways."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pytest_trt.models import networks, pruning, zoo
from pytest_trt.quality import pruning_loss
from tests.conftest import fast_args, load_json

pytest.importorskip("modelopt.torch.sparsity", exc_type=ImportError)


def test_structure_finds_the_pattern_and_its_violations() -> None:
    lin = nn.Linear(8, 2, bias=False)
    w = torch.tensor([[1.0, 0, 2, 0, 0, 0, 3, 4], [0, 5, 0, 6, 7, 0, 0, 8]])
    lin.weight.data.copy_(w)
    s = pruning.structure(lin)
    assert (s["eligible_layers"], s["layers_2to4"]) == (1, 1) and s["zero_fraction"] == 0.5
    lin.weight.data[0, 1] = 9.0  # first group now has three non-zeros: no longer 2:4
    assert pruning.structure(lin)["layers_2to4"] == 0
    assert pruning.structure(nn.Conv2d(3, 8, 3))["eligible_layers"] == 0  # 3 input channels: not eligible


def test_modelopt_prunes_every_eligible_layer_to_2_4() -> None:
    torch.manual_seed(0)
    model, tool = pruning.prune_2to4(networks.TinyCNN().eval())
    s = pruning.structure(model)
    assert tool.startswith("modelopt") and "sparse_magnitude" in tool
    # the 3-channel stem is not eligible; ModelOpt also leaves the 10-class head dense (too few outputs
    # for TensorRT's sparse kernels), so the two middle convolutions carry the pattern
    assert s["eligible_layers"] == 3 and s["layers_2to4"] == 2
    assert s["zero_fraction_in_2to4_layers"] == pytest.approx(0.5, abs=1e-3)
    # magnitude pruning keeps the two largest of each four
    w = model.features[3].weight.detach().movedim(1, -1).reshape(-1, 4).abs()
    kept = w > 0
    assert bool((w[kept].reshape(-1, 2).min(1).values >= w[~kept].reshape(-1, 2).max(1).values).all())


def test_the_variant_is_its_model_pruned() -> None:
    spec = zoo.get("tinycnn_sparse24")
    assert spec.parent == "tinycnn" and spec.prune == "2:4" and spec.factory is zoo.get("tinycnn").factory
    assert "tinycnn_sparse24" not in zoo.names()  # asked for by name, never a default
    model, source = zoo.load_model(spec, "random")
    assert "pruned 2:4 by modelopt" in source and pruning.structure(model)["layers_2to4"] == 2
    with pytest.raises(KeyError, match="unknown model 'nosuch_sparse24'"):
        zoo.get("nosuch_sparse24")


def test_pruning_loss_metrics() -> None:
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(20, 10))
    labels = dense.argmax(1)
    same = pruning_loss.pruning_loss([dense], [dense], "classification", labels)
    assert same["pruning_top1_agreement"] == 1.0 and same["pruning_rel_error"] == 0.0
    assert same["pruning_accuracy_drop"] == 0.0 and same["pruning_closeness"] == 100.0
    worse = pruning_loss.pruning_loss([dense], [dense[::-1]], "classification", labels)
    assert worse["pruning_top1_agreement"] < 0.5 and worse["pruning_accuracy_drop"] > 0.5


BENCH = """
import pytest

@pytest.mark.trt_matrix(models=["digits_cnn_sparse24"], batches=[32], profiles=["dynamic"], precisions=["fp32"])
def test_s(trt_run):
    trt_run.run()
"""


def test_pruned_engines_judged_against_the_pruned_model_and_pruning_gated_on_request(
    pytester: pytest.Pytester, shared_cache: Path
) -> None:
    """A faithful engine of the pruned network passes, a noisy one fails; what pruning cost is reported
    (trained digits classifier, real labels) and fails only a gate the user sets."""
    pytester.makepyfile(test_s=BENCH)
    out = pytester.path / "s.json"
    args = fast_args(shared_cache, "--trt-backend=onnxruntime,faulty_noise,tensorrt_rtx", f"--trt-json={out}")
    r = pytester.runpytest_inprocess(*args, "--trt-samples=256")
    r.assert_outcomes(passed=1, failed=1, skipped=1)
    cases = {c["extra_info"]["backend"]: c for c in load_json(out)["cases"]}
    ok = cases["onnxruntime"]["extra_info"]
    assert cases["onnxruntime"]["status"] == "ok" and cases["faulty_noise"]["status"] == "quality_failed"
    sp = ok["quality"]["sparsity"]
    assert sp["layers_2to4"] == 2 and sp["onnx"]["deflated_bytes"] < sp["dense_onnx"]["deflated_bytes"]
    assert sp["dense_accuracy_top1"] > 0.9 and "pruning_accuracy_drop" in sp
    assert "pruned 2:4" in ok["weights"]
    rtx = cases["tensorrt_rtx"]
    assert rtx["status"] == "built" and rtx["extra_info"]["engine"]["sparse_weights"] is True

    agreement = sp["pruning_top1_agreement"]
    strict = pytester.runpytest_inprocess(
        *fast_args(
            shared_cache,
            "--trt-backend=onnxruntime",
            f"--trt-gate=*:pruning_top1_agreement>={agreement + 0.01:.3f}",
        ),
        "--trt-samples=256",
    )
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*pruning_top1_agreement*"])
    loose = pytester.runpytest_inprocess(
        *fast_args(
            shared_cache,
            "--trt-backend=onnxruntime",
            f"--trt-gate=*:pruning_top1_agreement>={agreement - 0.01:.3f}",
        ),
        "--trt-samples=256",
    )
    loose.assert_outcomes(passed=1)
