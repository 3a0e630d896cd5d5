"""Which TensorRT is here and how it differs: the import that binds ``trt``, version families, and the
precision recipe each family can build.

Version differences are gated with ``hasattr``/``getattr`` on the imported module, never with enum
integers: 11.x removed the FP16/INT8/BF16 builder flags, calibrators, ``device_memory_size`` and more.
``trt`` is bound at first use so the plugin imports without TensorRT; the other modules of this package
read it from here (``trt = versions.trt``), and tests bind a recording double here.
"""

from __future__ import annotations

import importlib
import sys
import threading
from typing import TYPE_CHECKING, Any

from pytest_trt.engines.protocol import BuildSpec, Unsupported, named_exclusions
from pytest_trt.engines.recipes import Recipe, RecipeUnavailable, graph_recipe

if TYPE_CHECKING:
    import tensorrt as trt
else:
    trt = None  # bound by load_tensorrt()


_LOAD_LOCK = threading.Lock()


class TensorRTUnavailable(ImportError):
    pass


def load_tensorrt(module_name: str = "tensorrt") -> Any:
    """Import TensorRT and bind it for this module; raise TensorRTUnavailable with the reason.

    A successful ``import tensorrt`` is not proof: the ``tensorrt-stubs`` package installed with
    ``--no-deps`` (or NVIDIA's pip shim without its libraries) imports as an empty namespace.
    """
    global trt
    with _LOAD_LOCK:
        if trt is not None and getattr(trt, "__name__", "") == module_name:
            return trt
        try:
            mod = importlib.import_module(module_name)
        except ImportError as exc:  # includes a wheel whose libnvinfer.so is missing
            raise TensorRTUnavailable(f"`import {module_name}` failed: {exc}") from exc
        if not hasattr(mod, "__version__") or not hasattr(mod, "Builder"):
            where = getattr(mod, "__path__", None) or getattr(mod, "__file__", "?")
            raise TensorRTUnavailable(
                f"`{module_name}` at {where} has no __version__/Builder (stubs or a pip shim without "
                "NVIDIA's libraries?); install TensorRT (pip install 'pytest-trt[tensorrt]' or JetPack)"
            )
        trt = mod
        return mod


def version_tuple(version: str) -> tuple[int, int]:
    parts = ([*version.split("."), "0"])[:2]
    return int(parts[0]), int(parts[1])


def family(version: str) -> str:
    """'8.6', '10' or '11' (anything newer behaves like 11: strongly typed only)."""
    major, minor = version_tuple(version)
    if major < 10:
        return f"{major}.{minor}"
    return "10" if major == 10 else "11"


def flag(name: str) -> Any:
    return getattr(trt.BuilderFlag, name, None)


def is_strong_only() -> bool:
    # 11.x: weak typing is gone, and with it the precision flags.
    return flag("FP16") is None and flag("INT8") is None


def choose_recipe(spec: BuildSpec, version: str) -> Recipe:
    """The precision recipe for ``spec`` on this TensorRT (module must be bound)."""
    fam = family(version)
    strong_only = is_strong_only()
    typing = spec.typing
    if typing == "auto":
        typing = "strong" if strong_only else "weak"
    if typing == "weak" and strong_only:
        raise Unsupported(
            f"TensorRT {version} removed weak typing (builder precision flags); use --trt-typing strong"
        )
    if (
        typing == "strong"
        and not hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
        and not strong_only
    ):
        raise Unsupported(
            f"TensorRT {version} has no strongly typed networks (added in 9.0); use --trt-typing weak"
        )
    if typing == "strong":
        try:
            # TensorRT's parser takes only 8-bit (or narrower) DequantizeLinear inputs: biases stay float.
            base = graph_recipe(
                spec.precision,
                spec.calib_method,
                spec.recipe_tool,
                float_bias=True,
                exclude=named_exclusions(spec),
            )
        except RecipeUnavailable as exc:
            raise Unsupported(f"tensorrt {spec.precision} (strongly typed): {exc}") from exc
        return Recipe(
            base.precision,
            f"trt{fam}-strong-{base.name}",
            graph=base.graph,
            tool=base.tool,
            strongly_typed=True,
            tf32=spec.tf32,
            calib_method=base.calib_method,
            details=base.details,
        )
    flags = {"fp32": (), "fp16": ("FP16",), "bf16": ("BF16",), "int8": ("INT8",)}[spec.precision]
    for f in flags:
        if flag(f) is None:
            raise Unsupported(f"TensorRT {version} has no BuilderFlag.{f}")
    if spec.precision == "int8" and spec.calib_method not in ("auto", "entropy"):
        raise Unsupported(
            f"weakly typed int8 is calibrated by IInt8EntropyCalibrator2 here; --trt-calib-method "
            f"{spec.calib_method} needs a Q/DQ graph: --trt-typing strong"
        )
    return Recipe(
        spec.precision,
        f"trt{fam}-weak-{spec.precision}" + ("" if spec.tf32 else "-notf32"),
        builder_flags=flags,
        tf32=spec.tf32,
        calibrator="IInt8EntropyCalibrator2" if spec.precision == "int8" else None,
        calib_method="entropy" if spec.precision == "int8" else None,
    )


def module_version(module_name: str) -> str | None:
    """The version of a TensorRT module (``tensorrt`` or ``tensorrt_rtx``) if it imports for real, without
    binding it as ``trt``: a session that built with one must not have the other switched in."""
    try:
        mod = sys.modules.get(module_name) or importlib.import_module(module_name)
    except Exception:  # ImportError, or a wheel whose libraries fail to load
        return None
    version = getattr(mod, "__version__", None)
    return str(version) if version and hasattr(mod, "Builder") else None


def builder_versions() -> dict[str, str | None]:
    """Every TensorRT builder here, for machine_info: ``trt_version`` (TensorRT) and
    ``tensorrt_rtx_version`` (TensorRT-RTX), None where absent."""
    return {"trt_version": env_version(), "tensorrt_rtx_version": module_version("tensorrt_rtx")}


def env_version() -> str | None:
    """The TensorRT version if importable, without raising (for machine_info)."""
    try:
        return str(load_tensorrt().__version__)
    except TensorRTUnavailable:
        return None
    except Exception:
        return None
