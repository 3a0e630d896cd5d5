"""Which layers lose int8 accuracy: each layer group quantized alone, its error measured.

What Polygraphy's ``debug precision`` does by hand: one Q/DQ graph per quantizable layer (the layer
with the ReLU/Clip that follows it, every other layer in float), run on onnxruntime with graph
optimizations off (the graph's own arithmetic) over the *calibration* samples (the evaluation samples
stay unseen), and ranked by the relative L2 error of the model's outputs against fp32.  The ranking
is cached by the graph, the calibration data and the recipe.  :func:`choose` picks the layers that
stand out, which ``--trt-int8-exclude auto`` keeps in float.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pytest_trt.cache import ArtifactCache
from pytest_trt.engines.onnxrt.unfused import graph_outputs
from pytest_trt.engines.ort_quantize import Quantizer
from pytest_trt.engines.recipes import Recipe
from pytest_trt.models.datasets import Samples
from pytest_trt.models.export import OnnxModel

REVISION = 2  # 2: static graphs measured on every sample (padded), by the shared unfused runner
MAX_EXCLUDED = 4  # a mixed-precision recipe keeps a few layers in float, not a float model


def _error(ref: list[np.ndarray], out: list[np.ndarray]) -> float:
    num = sum(float(np.sum((o.astype(np.float64) - r) ** 2)) for r, o in zip(ref, out, strict=True))
    den = sum(float(np.sum(r.astype(np.float64) ** 2)) for r in ref)
    return float(np.sqrt(num / den)) if den > 0 else float(np.sqrt(num))


def measure(src: Path, input_names: tuple[str, ...], calib: Samples, recipe: Recipe) -> list[dict[str, Any]]:
    """Every quantizable layer with the output error when it alone is int8, worst first."""
    with (
        Quantizer.for_recipe(src, input_names, calib, recipe) as q,
        tempfile.TemporaryDirectory(prefix="pytest-trt-qdq-") as tmp,
    ):
        ref = graph_outputs(src, calib.arrays)
        ranked = []
        t0, last = time.monotonic(), time.monotonic()
        for k, layer in enumerate(q.layers):
            dst = Path(tmp) / f"layer{k}.onnx"
            q.quantize(dst, only=[layer])
            ranked.append({"layer": layer, "error": _error(ref, graph_outputs(dst, calib.arrays))})
            dst.unlink()
            if time.monotonic() - last > 5:  # a long pass says where it is
                last = time.monotonic()
                sys.stderr.write(
                    f"[pytest-trt] int8 sensitivity of {src.name}: {k + 1}/{len(q.layers)} layers, "
                    f"{last - t0:.0f} s\n"
                )
    return sorted(ranked, key=lambda r: -r["error"])


def choose(ranked: Sequence[dict[str, Any]]) -> list[str]:
    """The layers that stand out: at least a quarter of the worst layer's error and three times the
    median layer's, at most :data:`MAX_EXCLUDED`."""
    if not ranked:
        return []
    errors = [r["error"] for r in ranked]
    cut = max(0.25 * errors[0], 3 * float(np.median(errors)))
    return [r["layer"] for r in ranked[:MAX_EXCLUDED] if r["error"] >= cut and r["error"] > 0]


def cached(cache: ArtifactCache, base: OnnxModel, calib: Samples, recipe: Recipe) -> list[dict[str, Any]]:
    """:func:`measure`, made once per graph, calibration data and recipe settings."""
    settings = {k: v for k, v in recipe.details.items() if k != "excluded"}
    key = {
        "base_onnx": base.sha256,
        "calibration": {"digest": calib.digest(), "n": len(calib)},
        "method": recipe.calib_method,
        "details": settings,
        "revision": REVISION,
    }
    names = base.input_names or (base.input_name,)

    def build(tmp: Path) -> dict[str, Any]:
        tmp.write_text(json.dumps(measure(base.path, names, calib, recipe)))
        return {}

    art = cache.get_or_build("int8-sensitivity", key, ".json", build)
    ranked: list[dict[str, Any]] = json.loads(art.path.read_text())
    return ranked
