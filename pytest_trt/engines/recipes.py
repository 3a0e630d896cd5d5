"""Precision recipes: how a precision is obtained, recorded in every result as ``extra_info.recipe``.

Two kinds exist because TensorRT 11 removed weak typing:

* builder-level (TensorRT <= 10, weakly typed): the ONNX stays fp32 and builder flags (FP16, BF16,
  INT8 + an entropy calibrator) pick the precision;
* graph-level (strongly typed, the only route on TensorRT 11; also what ONNX Runtime runs): the
  precision lives in the ONNX graph, converted here to fp16 (fp32 I/O kept) or quantized to int8
  with explicit, symmetric, per-channel Q/DQ nodes from calibration data.

The graph-level transforms in this module are backend-neutral and cached like every artifact, so
the onnxruntime backend builds and checks the very same fp16 / int8-QDQ models on CPU.
"""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from pytest_trt.cache import ArtifactCache
from pytest_trt.engines.ort_quantize import (
    FUSED_ACTIVATIONS,
    QUANTIZED_OPS,
    Quantizer,
    private_copy,
    static_batch,
    whole_batches,
)
from pytest_trt.models.datasets import Samples
from pytest_trt.models.export import (
    OnnxModel,
    graph_facts,
    load_checked,
    onnx_model_from_artifact,
)

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
CALIB_METHODS = ("auto", "entropy", "minmax", "percentile")
# ``auto``: the method measured best for each quantizer with the default mixed precision on trained
# EfficientNet-Lite0 (docs/int8.md): minmax for onnxruntime's (entropy's ranges clip ReLU6 outputs:
# top-1 agreement 0.47 vs 0.83) and for ModelOpt's (0.944 vs 0.917 with the two sensitive layers in
# float; with none in float entropy led, 0.89 vs 0.81).
AUTO_METHOD = {"modelopt.quantize": "minmax", "onnxruntime.quantize_static": "minmax"}
# Bumped whenever a transform's code changes what it writes, so cached graphs of the old code are not reused.
RECIPE_REVISION = 4


class RecipeUnavailable(RuntimeError):
    """The precision cannot be produced here (missing package or unsupported combination)."""


@dataclass(frozen=True)
class Recipe:
    precision: str
    name: str
    graph: str = "as-exported"  # as-exported | fp16-converted | bf16-converted | qdq-int8
    tool: str = ""  # the converter used for graph recipes
    builder_flags: tuple[str, ...] = ()  # TensorRT builder flags (weakly typed recipes only)
    strongly_typed: bool = False
    tf32: bool | None = None
    calibrator: str | None = None  # e.g. "IInt8EntropyCalibrator2" for implicit int8
    calib_method: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["builder_flags"] = list(self.builder_flags)
        return d


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@functools.cache
def cpu_int8_saturates() -> bool:
    """True on x86 CPUs without VNNI, where ONNX Runtime's fused int8 kernels multiply u8 x s8 pairs into
    16-bit intermediates that saturate with full-range 8-bit weights (measured here on ResNet18: 31 %
    relative error fused vs 4.8 % for the same Q/DQ graph run unfused). ONNX Runtime's documented remedy
    is 7-bit weights (``reduce_range``)."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "vnni" not in flags


def graph_recipe(
    precision: str,
    calib_method: str = "auto",
    prefer: str = "auto",
    reduce_range: bool = False,
    float_bias: bool = False,
    cpu: bool = False,
    exclude: tuple[str, ...] = (),
) -> Recipe:
    """The graph-level recipe for ``precision`` with the best converter installed here.

    ``prefer``: auto (ModelOpt when installed, else onnxconverter-common / onnxruntime), modelopt, ort.
    ``reduce_range``: int8 weights in 7 bits (for ONNX Runtime on x86 CPUs without VNNI, see
    :func:`cpu_int8_saturates`); TensorRT needs no such thing.
    ``float_bias``: keep biases in float (TensorRT's parser rejects onnxruntime's int32-quantized biases:
    its DequantizeLinear takes only 8-bit or narrower inputs; TensorRT-RTX 1.7 said so).
    ``cpu``: the graph is for the CPU engines, which take unsigned asymmetric activations (TensorRT
    takes symmetric ones only).  ``exclude``: int8 layers kept in float (``--trt-int8-exclude``).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    use_modelopt = prefer == "modelopt" or (prefer == "auto" and has_module("modelopt"))
    if precision == "fp32":
        return Recipe("fp32", "fp32", tool="none")
    if precision in ("fp16", "bf16"):
        if use_modelopt:
            return Recipe(
                precision,
                f"onnx-{precision}-autocast",
                graph=f"{precision}-converted",
                tool="modelopt.autocast",
                strongly_typed=True,
                details={"keep_io_types": True},
            )
        if precision == "fp16" and not has_module("onnxconverter_common"):
            raise RecipeUnavailable(
                "fp16 ONNX conversion needs onnxconverter-common (pip install onnxconverter-common) "
                "or NVIDIA ModelOpt (pip install nvidia-modelopt)"
            )
        if precision == "bf16":
            raise RecipeUnavailable(
                "a bf16 ONNX graph needs NVIDIA ModelOpt AutoCast (pip install nvidia-modelopt); "
                "onnxconverter-common converts to fp16 only"
            )
        return Recipe(
            "fp16",
            "onnx-fp16-keepio",
            graph="fp16-converted",
            tool="onnxconverter-common",
            strongly_typed=True,
            details={"keep_io_types": True},
        )
    # int8
    if calib_method == "percentile" and use_modelopt:
        if prefer == "modelopt":
            raise RecipeUnavailable(
                "ModelOpt calibrates int8 with max (minmax) or entropy; percentile is onnxruntime's "
                "(--trt-recipe-tool ort)"
            )
        use_modelopt = False  # auto: the quantizer that has the method asked for
    tool = "modelopt.quantize" if use_modelopt and not reduce_range else "onnxruntime.quantize_static"
    if calib_method == "auto":
        calib_method = AUTO_METHOD[tool]
    unsigned = cpu and tool == "onnxruntime.quantize_static"
    return Recipe(
        "int8",
        f"onnx-qdq-int8-{calib_method}"
        + ("-u8" if unsigned else "")
        + ("-w7" if reduce_range else "")
        + ("-fbias" if float_bias else "")
        + (f"-excl{len(exclude)}" if exclude else ""),
        graph="qdq-int8",
        tool=tool,
        strongly_typed=True,
        calib_method=calib_method,
        details={
            "activations": "u8-asymmetric" if unsigned else "s8-symmetric",
            "symmetric_weights": True,
            "per_channel": True,
            "activation_matmuls": "float",
            "ops": list(QUANTIZED_OPS),
            "ranges_after": list(FUSED_ACTIVATIONS),  # a conv's output range is taken after its ReLU
            "weight_bits": 7 if reduce_range else 8,
            "bias": "float" if float_bias else "int32",
            "excluded": list(exclude),
        },
    )


def _fp16_onnxconverter(src: Path, dst: Path) -> None:
    from onnxconverter_common import float16

    m = load_checked(src)
    # keep_io_types: callers feed and read fp32, as with the TensorRT strongly typed recipe.
    m16 = float16.convert_float_to_float16(m, keep_io_types=True, disable_shape_infer=False)
    onnx.save_model(m16, str(dst))


# AutoCast's reference run: a few real inputs are enough to see the activation ranges
AUTOCAST_SAMPLES = 4


def _fixed_batch(src: Path) -> int | None:
    """The first input's batch where the graph fixes it (a static export), else None."""
    m = onnx.load(str(src), load_external_data=False)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    return int(dims[0].dim_value) if dims and dims[0].dim_value > 0 else None


def _autocast(src: Path, dst: Path, low: str, input_names: tuple[str, ...], calib: Samples | None) -> None:
    # Real inputs, not AutoCast's random ones: a graph with dynamic H/W would otherwise be fed every
    # open axis at 1 (YOLOv8's concatenations of upsampled features then fail).
    if calib is not None:  # a graph exported for a static batch takes exactly that many
        batch = _fixed_batch(src)
        calib = calib.with_arrays(
            calib.cycled(batch) if batch else tuple(a[:AUTOCAST_SAMPLES] for a in calib.arrays)
        )
    _modelopt_subprocess(
        "from modelopt.onnx.autocast import convert_to_mixed_precision\n"
        "onnx.save_model(convert_to_mixed_precision(onnx_path=a.src, low_precision_type=a.arg, "
        "keep_io_types=True, calibration_data=a.calib or None), a.dst)",
        src,
        dst,
        low,
        input_names,
        calib,
    )


# ModelOpt runs in a child process: it alters onnxruntime.quantization process-wide (a quantize_static
# after it fails with "Histogram has not been collected"), probes CUDA providers and writes scratch
# files beside its input.
_MODELOPT_MAIN = """
import argparse, sys
import numpy as np, onnx
p = argparse.ArgumentParser()
for k in ("src", "dst", "arg", "calib"):
    p.add_argument("--" + k, default="")
a = p.parse_args()
{body}
"""


def _modelopt_subprocess(
    body: str,
    src: Path,
    dst: Path,
    arg: str,
    input_names: tuple[str, ...] = (),
    calib: Samples | None = None,
) -> None:
    with private_copy(src, "pytest-trt-modelopt-") as private:
        data = private.with_name("calib.npz")
        if calib is not None:  # arrays by input name: ModelOpt's calibration_data form
            arrays: dict[str, Any] = dict(zip(input_names, calib.arrays, strict=True))
            np.savez(data, **arrays)
        cmd = [sys.executable, "-c", _MODELOPT_MAIN.format(body=body), "--src", str(private), "--dst", str(dst),
               "--arg", arg, "--calib", str(data) if calib is not None else ""]  # fmt: skip
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
        if p.returncode != 0 or not dst.exists():
            raise RecipeUnavailable(f"NVIDIA ModelOpt failed on {src.name}: {(p.stderr or p.stdout)[-1500:]}")


def _qdq_ort(
    src: Path,
    dst: Path,
    input_names: tuple[str, ...],
    calib: Samples,
    recipe: Recipe,
) -> None:
    with Quantizer.for_recipe(src, input_names, calib, recipe) as q:
        q.quantize(dst, exclude=recipe.details.get("excluded", ()))


def _qdq_modelopt(
    src: Path, dst: Path, input_names: tuple[str, ...], calib: Samples, method: str, exclude: list[str]
) -> None:
    import json
    import re

    fixed = static_batch(onnx.load(str(src), load_external_data=False), input_names[0])
    calib = calib.with_arrays(tuple(whole_batches(a, fixed) for a in calib.arrays))
    # ModelOpt takes node-name patterns; exact names, escaped, passed as one JSON argument
    arg = json.dumps(
        {
            "method": "max" if method == "minmax" else "entropy",
            "exclude": [f"^{re.escape(n)}$" for n in exclude],
        }
    )
    _modelopt_subprocess(
        "import json\nfrom modelopt.onnx.quantization import quantize\nopt = json.loads(a.arg)\n"
        "quantize(onnx_path=a.src, quantize_mode='int8', calibration_data=dict(np.load(a.calib)), "
        "calibration_method=opt['method'], nodes_to_exclude=opt['exclude'] or None, output_path=a.dst)",
        src,
        dst,
        arg,
        input_names,
        calib,
    )


def apply_graph_recipe(
    cache: ArtifactCache, base: OnnxModel, recipe: Recipe, calib: Samples | None = None
) -> OnnxModel:
    """Return the ONNX model that carries ``recipe``'s precision (the input itself for fp32)."""
    if recipe.graph == "as-exported":
        return base
    key: dict[str, Any] = {"base_onnx": base.sha256, "recipe": recipe.as_dict(), "revision": RECIPE_REVISION}
    if recipe.graph == "qdq-int8" and calib is None:
        raise RecipeUnavailable("int8 needs calibration samples")
    if calib is not None:  # int8's calibration, or AutoCast's reference inputs
        key["calibration"] = {"digest": calib.digest(), "n": len(calib), "source": calib.source}
    key["tool_versions"] = _tool_versions(recipe.tool)

    def build(tmp: Path) -> dict[str, Any]:
        out = tmp.with_suffix(".recipe.onnx")
        try:
            if recipe.graph == "fp16-converted" and recipe.tool == "onnxconverter-common":
                _fp16_onnxconverter(base.path, out)
            elif recipe.graph in ("fp16-converted", "bf16-converted"):
                _autocast(base.path, out, recipe.precision, _names(base), calib)
            elif recipe.tool == "modelopt.quantize":
                assert calib is not None
                _qdq_modelopt(
                    base.path, out, _names(base), calib, recipe.calib_method or "entropy",
                    list(recipe.details.get("excluded", ())),
                )  # fmt: skip
            else:
                assert calib is not None
                _qdq_ort(base.path, out, _names(base), calib, recipe)
            m = load_checked(out)
            onnx.save_model(m, str(tmp))
        finally:
            out.unlink(missing_ok=True)
        return {"exporter": base.exporter, **graph_facts(m)}

    art = cache.get_or_build(f"onnx-{recipe.graph}", key, ".onnx", build)
    return onnx_model_from_artifact(art, base.opset)


def _names(model: OnnxModel) -> tuple[str, ...]:
    return model.input_names or (model.input_name,)


def _tool_versions(tool: str) -> dict[str, str]:
    import onnxruntime

    out = {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    if tool == "onnxconverter-common":
        import onnxconverter_common

        out["onnxconverter_common"] = getattr(onnxconverter_common, "__version__", "?")
    if tool.startswith("modelopt"):
        import modelopt

        out["modelopt"] = getattr(modelopt, "__version__", "?")
    return out


def count_qdq_nodes(path: Path) -> dict[str, int]:
    m = onnx.load(str(path), load_external_data=False)
    ops = [n.op_type for n in m.graph.node]
    return {"QuantizeLinear": ops.count("QuantizeLinear"), "DequantizeLinear": ops.count("DequantizeLinear")}
