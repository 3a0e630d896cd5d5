"""Compare the int8 Q/DQ recipes on EfficientNet-Lite0 (ImageNet weights, real photographs).

onnxruntime ``quantize_static`` (as pytest-trt writes it for TensorRT: symmetric, per-channel, float
biases) against NVIDIA ModelOpt's ONNX PTQ (``modelopt.onnx.quantization.quantize``, int8): does
TensorRT-RTX's real parser/builder accept each graph, at what plan size, and how much of fp32's top-1
does each keep on ONNX Runtime CPU (exact Q/DQ arithmetic).  Run:
``PYTHONPATH=<dir with nvidia-modelopt[onnx]> python docs/experiments/int8_recipes.py``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pytest_trt.cache import ArtifactCache
from pytest_trt.engines.protocol import BuildFailed, BuildSpec
from pytest_trt.engines.recipes import apply_graph_recipe, count_qdq_nodes, graph_recipe
from pytest_trt.engines.tensorrt import backend as tb
from pytest_trt.models import datasets, zoo
from pytest_trt.models.export import ExportSettings, export_onnx
from pytest_trt.quality import reference


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "efficientnet_lite0"
    spec = zoo.get(name)
    model, source = zoo.load_model(spec, "auto", 0)
    cache = ArtifactCache(Path(tempfile.mkdtemp()))
    base = export_onnx(cache, spec, model, source, ExportSettings(dynamic_batch=True))
    x = datasets.photos(spec.input.shape, 36, 0).x
    calib = datasets.photos(spec.input.shape, 32, 10_007, views="calib")
    fp32 = reference.graph_outputs(base.path, x)
    trt = tb.load_tensorrt("tensorrt_rtx")
    rows = []
    for tool, calib_method in (
        ("ort", "entropy"),
        ("ort", "minmax"),
        ("modelopt", "entropy"),
        ("modelopt", "minmax"),
    ):
        recipe = graph_recipe("int8", calib_method, tool, float_bias=True)
        row: dict[str, object] = {"tool": recipe.tool, "calibration": calib_method, "recipe": recipe.name}
        try:
            t0 = time.perf_counter()
            graph = apply_graph_recipe(cache, base, recipe, calib)
            row["quantize_s"] = round(time.perf_counter() - t0, 1)
        except Exception as exc:
            row["quantize_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            rows.append(row)
            continue
        row["qdq_nodes"] = count_qdq_nodes(graph.path)
        out = reference.graph_outputs(graph.path, x)
        row["rel_error_vs_fp32"] = round(float(np.linalg.norm(out - fp32) / np.linalg.norm(fp32)), 4)
        row["top1_agreement"] = round(float(np.mean(out.argmax(1) == fp32.argmax(1))), 4)
        bs = BuildSpec(
            precision="int8",
            profile="dynamic",
            batch_range=(1, 8, 32),
            typing="strong",
            compute_capability="8.9",
        )
        plan = Path(tempfile.mkdtemp()) / "p.plan"
        try:
            facts = tb.build_plan(graph.path, plan, bs, tb.choose_recipe(bs, trt.__version__), spec, cache=None,
                                  timing_cache_key=None, calibration=None, calib_cache_path=None)  # fmt: skip
            row["tensorrt_rtx"] = {"built": True, "plan_bytes": plan.stat().st_size,
                                   "build_s": round(facts["build_seconds_trt"], 2)}  # fmt: skip
        except BuildFailed as exc:
            row["tensorrt_rtx"] = {"built": False, "error": str(exc)[:300]}
        rows.append(row)
    print(json.dumps({"model": name, "weights": source, "trt": trt.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
