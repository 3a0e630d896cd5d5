"""The step every ONNX-consuming backend shares before it builds: the graph that carries the recipe's
precision (fp16-converted, Q/DQ-calibrated) made or reused from the cache, with what it cost and how it
was calibrated, recorded the same way for every engine.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_trt.engines.protocol import BuildContext, BuildSpec, Unsupported, named_exclusions
from pytest_trt.engines.recipes import (
    Recipe,
    RecipeUnavailable,
    apply_graph_recipe,
    count_qdq_nodes,
    cpu_int8_saturates,
    graph_recipe,
)

if TYPE_CHECKING:
    from pytest_trt.models.datasets import Samples
    from pytest_trt.models.export import OnnxModel
    from pytest_trt.models.registry import ModelSpec


@dataclass
class PreparedGraph:
    graph: OnnxModel  # the ONNX file the engine is built from
    calibration: Samples | None  # the samples an int8 recipe was calibrated on
    seconds: float  # making (or finding) the graph
    recipe: Recipe  # the recipe as made: ``--trt-int8-exclude auto`` resolved to the layers it keeps
    sensitivity: list[dict[str, Any]] | None = None  # int8 layers by output error, worst first (auto)

    def facts(self, recipe: Recipe) -> dict[str, Any]:
        """What a result records of the graph step: its cost, and for int8 the Q/DQ nodes and calibration."""
        out: dict[str, Any] = {
            "recipe_seconds": round(self.seconds, 4),
            "graph_nodes": self.graph.node_count,
            "graph_params": self.graph.param_count,
            "graph_bytes": self.graph.file_size,
        }
        if self.sensitivity is not None:
            out["int8_sensitivity"] = self.sensitivity[:8]
        if recipe.graph == "qdq-int8" and self.calibration is not None:
            out["qdq_nodes"] = count_qdq_nodes(self.graph.path)
            out["calibration"] = {
                "source": self.calibration.source,
                "samples": len(self.calibration),
                "method": recipe.calib_method,
            }
        return out


def graph_takes_samples(recipe: Recipe, model_spec: ModelSpec) -> bool:
    """Whether making ``recipe``'s graph reads calibration samples: int8 calibrates on them, and ModelOpt's
    AutoCast runs them as its reference inputs (held batch first, as the graph takes them only when it is
    batch first).  Whoever makes the graph again (the same-recipe reference) must pass the same samples,
    or it gets another graph."""
    autocast = recipe.tool == "modelopt.autocast" and model_spec.batch_first
    return recipe.graph == "qdq-int8" or autocast


def prepare_graph(ctx: BuildContext, recipe: Recipe, calibrate: bool | None = None) -> PreparedGraph:
    """The recipe's graph for ``ctx``; ``calibrate`` asks for calibration samples where the graph itself
    needs none (an implicitly calibrated TensorRT engine needs them without a Q/DQ graph)."""
    need = graph_takes_samples(recipe, ctx.model_spec) or bool(calibrate)
    calib = ctx.calibration() if need else None
    t0 = time.perf_counter()
    ranked = None
    if recipe.graph == "qdq-int8" and ctx.spec.int8_exclude == "auto":
        assert calib is not None
        from pytest_trt.engines import int8_sensitivity

        try:
            ranked = int8_sensitivity.cached(ctx.cache, ctx.onnx, calib, recipe)
            keep, how = tuple(int8_sensitivity.choose(ranked)), "auto"
        except Exception as exc:  # the measurement is an aid: without it the whole graph is int8
            keep, how = (), f"auto: not measured ({type(exc).__name__}: {str(exc)[:200]})"
        recipe = dataclasses.replace(
            recipe,
            name=recipe.name + (f"-excl{len(keep)}" if keep else ""),
            details={**recipe.details, "excluded": list(keep), "excluded_by": how},
        )
    graph = (
        apply_graph_recipe(ctx.cache, ctx.onnx, recipe, calib) if recipe.graph != "as-exported" else ctx.onnx
    )
    return PreparedGraph(graph, calib, time.perf_counter() - t0, recipe, ranked)


def cpu_int8_recipe(spec: BuildSpec, backend: str) -> Recipe:
    """The int8 Q/DQ graph the CPU engines share (onnxruntime's quantizer unless the user picks a tool;
    7-bit weights on x86 without VNNI, where ONNX Runtime's fused kernels saturate)."""
    tool = "ort" if spec.recipe_tool == "auto" else spec.recipe_tool
    try:
        return graph_recipe(
            "int8", spec.calib_method, tool, cpu_int8_saturates(), cpu=True, exclude=named_exclusions(spec)
        )
    except RecipeUnavailable as exc:
        raise Unsupported(f"{backend} int8: {exc}") from exc
