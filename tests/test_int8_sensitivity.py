"""Which layers lose int8 accuracy: a convolution made fragile on purpose is the one the sensitivity
report names first, ``--trt-int8-exclude auto`` keeps it in float, and a failing int8 case says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from pytest_trt.engines import int8_sensitivity
from pytest_trt.engines.recipes import graph_recipe
from pytest_trt.models.datasets import synthetic
from tests.conftest import fast_args, load_json


class Fragile(nn.Module):
    """conv2 reads a channel that is always 0 through a weight 10^4 times its others: no effect in fp32,
    but its per-channel int8 weight scale is set by that weight, so every other weight rounds to 0."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c1, self.c2, self.c3 = (
            nn.Conv2d(3, 8, 3, padding=1),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.Conv2d(8, 4, 1),
        )
        self.fc = nn.Linear(4, 5)
        with torch.no_grad():
            self.c1.weight[7] = 0.0
            self.c1.bias[7] = -1.0  # channel 7 is 0 after the ReLU, always
            self.c2.weight[:, 7] = 1e4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c1(x))
        x = torch.relu(self.c2(x))
        x = torch.relu(self.c3(x))
        return self.fc(x.mean((2, 3)))


@pytest.fixture(scope="module")
def fragile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("fragile") / "fragile.onnx"
    torch.onnx.export(
        Fragile().eval(), (torch.randn(2, 3, 16, 16),), str(path), input_names=["x"], output_names=["y"],
        dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, dynamo=False,
    )  # fmt: skip
    m = onnx.load(str(path))
    weights = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    node = next(
        n.name for n in m.graph.node if n.op_type == "Conv" and np.abs(weights[n.input[1]]).max() >= 1e3
    )
    return path, node


def test_the_fragile_layer_is_named_first_and_chosen(fragile: tuple[Path, str]) -> None:
    path, node = fragile
    recipe = graph_recipe("int8", "minmax", "ort", cpu=True)
    ranked = int8_sensitivity.measure(path, ("x",), synthetic((3, 16, 16), 16, seed=1), recipe)
    assert ranked[0]["layer"] == node
    assert ranked[0]["error"] > 10 * ranked[-1]["error"]
    assert int8_sensitivity.choose(ranked) == [node]


def test_nothing_stands_out_in_an_even_ranking() -> None:
    ranked = [{"layer": f"l{k}", "error": 0.01 + 0.001 * k} for k in range(10)][::-1]
    assert int8_sensitivity.choose(ranked) == []


def _run(
    pytester: pytest.Pytester, cache: Path, onnx_path: Path, exclude: str, *gates: str
) -> tuple[pytest.RunResult, dict]:  # type: ignore[type-arg]
    out = pytester.path / f"{exclude}.json"
    r = pytester.runpytest(
        *fast_args(cache), f"--trt-onnx={onnx_path}", "--trt-shapes=x:1x3x16x16", "--trt-precision=int8",
        "--trt-backend=onnxruntime", "--trt-calib-samples=16", "--trt-calib-method=minmax", "--trt-batch=1",
        f"--trt-int8-exclude={exclude}", f"--trt-json={out}", "--trt-gate=int8:ref_error_ratio<=1000",
        "--trt-gate=int8:closeness@0.1>=90",
        # 10^4 weights make fp32 summation order visible: the fused engine strays from its own graph
        "--trt-gate=int8:exact_ref_distance_ratio<=100", *gates,
    )  # fmt: skip
    return r, load_json(out)["cases"][0]


def test_auto_keeps_the_fragile_layer_in_float_and_passes(
    pytester: pytest.Pytester, shared_cache: Path, fragile: tuple[Path, str]
) -> None:
    path, node = fragile
    r, case = _run(pytester, shared_cache, path, "auto")
    details = case["extra_info"]["recipe"]["details"]
    assert details["excluded"] == [node] and details["excluded_by"] == "auto"
    assert case["extra_info"]["engine"]["int8_sensitivity"][0]["layer"] == node
    assert case["status"] == "ok", r.stdout.str()[-3000:]


@pytest.mark.parametrize("exclude", ["auto", "none"])
def test_a_failing_int8_case_names_the_sensitive_layers_or_how_to_find_them(
    pytester: pytest.Pytester, shared_cache: Path, fragile: tuple[Path, str], exclude: str
) -> None:
    path, node = fragile
    r, case = _run(pytester, shared_cache, path, exclude, "--trt-gate=int8:closeness@0.005>=99.9")
    assert case["status"] == "quality_failed"
    if exclude == "auto":
        r.stdout.fnmatch_lines(
            [
                f"*most sensitive int8 layers (output error when quantized alone): {node} (*",
                f"*kept in float: {node} (auto)*",
            ]
        )
    else:
        r.stdout.fnmatch_lines(["*--trt-int8-exclude auto measures which layers lose the accuracy*"])


def test_a_graph_whose_nodes_have_no_names_is_still_quantized(tmp_path: Path) -> None:
    """Layers are chosen by name: the quantizer names unnamed nodes in its private copy first."""
    from onnx import TensorProto, helper

    from pytest_trt.engines.ort_quantize import Quantizer

    w = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w"
    )
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["y"]),
        ],
        "unnamed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])],
        [w],
    )
    src = tmp_path / "unnamed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    with Quantizer(src, ("x",), synthetic((3, 8, 8), 8, seed=1), "minmax", unsigned_activations=True) as q:
        assert q.layers == ["Conv_0"]
        q.quantize(tmp_path / "q.onnx")
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(tmp_path / "q.onnx")).graph.node)
