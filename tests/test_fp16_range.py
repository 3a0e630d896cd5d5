"""What a failing fp16 case reports as the cause: the constants and activations fp16 cannot hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pytest_trt.quality import fp16_range


def _graph(path: Path, scale: float, bias: float) -> Path:
    """y = (x * scale) + bias - bias: with a large scale the product leaves fp16's range, with a large
    bias the constant does, while the output stays small."""
    nodes = [
        helper.make_node("Mul", ["x", "scale"], ["scaled"], name="scale_it"),
        helper.make_node("Constant", [], ["bias"], value=numpy_helper.from_array(np.float32([bias]), "b")),
        helper.make_node("Add", ["scaled", "bias"], ["shifted"], name="add_bias"),
        helper.make_node("Sub", ["shifted", "bias"], ["y"], name="remove_bias"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.float32([scale]), "scale")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


FEEDS = {"x": np.full((1, 4), 100.0, np.float32)}


def test_a_graph_within_range_reports_nothing(tmp_path: Path) -> None:
    section = fp16_range.scan(_graph(tmp_path / "ok.onnx", 2.0, 1.0), FEEDS)
    assert section["constants_count"] == 0 and section["activations_count"] == 0
    assert fp16_range.hint(section) == []


def test_a_constant_beyond_fp16_is_named_with_the_node_that_reads_it(tmp_path: Path) -> None:
    section = fp16_range.scan(_graph(tmp_path / "c.onnx", 2.0, 1e6), FEEDS)
    worst = section["constants"][0]
    assert (worst["tensor"], worst["node"], worst["op"]) == ("bias", "add_bias", "Add")
    assert worst["max_abs"] == 1e6


def test_an_activation_beyond_fp16_is_named_with_the_node_that_makes_it(tmp_path: Path) -> None:
    section = fp16_range.scan(_graph(tmp_path / "a.onnx", 1000.0, 1.0), FEEDS)  # 100 * 1000 > 65504
    assert section["constants_count"] == 0
    made_by = {r["tensor"]: r["node"] for r in section["activations"]}
    assert made_by == {"scaled": "scale_it", "shifted": "add_bias", "y": "remove_bias"}
    assert any("scale_it" in line for line in fp16_range.hint(section))


def test_without_a_sample_only_constants_are_scanned(tmp_path: Path) -> None:
    section = fp16_range.scan(_graph(tmp_path / "a.onnx", 1000.0, 1e6), None)
    assert section["constants_count"] == 1 and "activations" not in section
