"""The TensorRT backend (8.6, 10.x, 11.x) and TensorRT for RTX: availability, recipe choice, the plan's
cache key, and :meth:`build`, which builds (:mod:`.build`) or reuses a plan and loads it (:mod:`.runtime`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pytest_trt.cache import Artifact
from pytest_trt.engines.prepare import prepare_graph
from pytest_trt.engines.protocol import (
    Availability,
    Backend,
    BuildContext,
    BuildFailed,
    BuildSpec,
    BuiltNotRunnable,
    Device,
    EngineInfo,
    Unsupported,
)
from pytest_trt.engines.recipes import Recipe
from pytest_trt.engines.tensorrt import versions
from pytest_trt.engines.tensorrt.build import GpuIdentity, build_plan, derived_key
from pytest_trt.engines.tensorrt.runtime import TrtEngine, engine_facts, load_engine
from pytest_trt.models.zoo import ModelSpec

# re-exported: tests and users' scripts reach the whole backend through this module
choose_recipe = versions.choose_recipe
load_tensorrt = versions.load_tensorrt
family = versions.family
version_tuple = versions.version_tuple
TensorRTUnavailable = versions.TensorRTUnavailable


class TensorRTBackend(Backend):
    name = "tensorrt"
    module_name = "tensorrt"
    precisions = ("fp32", "fp16", "bf16", "int8")
    uses_opt_level = True
    builds_without_gpu = False  # TensorRT needs the GPU it builds for; TensorRT-RTX targets named ones

    def _load(self) -> Any:
        return versions.load_tensorrt(self.module_name)

    def availability(self) -> Availability:
        try:
            mod = self._load()
        except versions.TensorRTUnavailable as exc:
            return Availability(False, reason=str(exc))
        return Availability(True, mod.__version__)

    def unsupported(self, spec: BuildSpec, model: ModelSpec, device: Device) -> str | None:
        a = self.availability()
        if not a.ok:
            return f"{self.name} unavailable: {a.reason}"
        if not device.is_cuda and not self.builds_without_gpu:
            return f"{self.name} needs a CUDA GPU (device is {device.torch})"
        if spec.version_compatible and not spec.allow_host_code:
            return (
                "version-compatible plans embed the lean runtime (host code) and are refused unless you opt in "
                "with --trt-allow-host-code"
            )
        return super().unsupported(spec, model, device)

    def recipe(self, spec: BuildSpec) -> Recipe:
        mod = self._load()
        return versions.choose_recipe(spec, mod.__version__)

    def plan_key(self, ctx: BuildContext, recipe: Recipe, onnx_sha: str, gpu: GpuIdentity) -> dict[str, Any]:
        trt = versions.trt
        from pytest_trt.hardware import jetson

        return {
            "onnx": onnx_sha,
            "recipe": recipe.as_dict(),
            "build": ctx.spec.key(),
            "model": ctx.model_spec.name,
            "trt_version": trt.__version__,
            "gpu": gpu.name,
            "compute_capability": gpu.compute_capability,
            # TensorRT tunes to the clocks it sees: on Jetson a power mode is a different target.
            "power_mode": jetson.power_mode_key(),
        }

    def plan(self, ctx: BuildContext) -> tuple[Artifact, Recipe, GpuIdentity, float]:
        """Build the plan for ``ctx`` or reuse the cached one: (artifact, recipe, GPU, recipe seconds)."""
        self._load()
        trt = versions.trt
        recipe = self.recipe(ctx.spec)
        gpu = GpuIdentity.of(ctx.device)
        prepared = prepare_graph(ctx, recipe, calibrate=bool(recipe.calibrator))
        recipe = prepared.recipe  # as made (--trt-int8-exclude auto resolved)
        model, calib, recipe_seconds = prepared.graph, prepared.calibration, prepared.seconds
        key = self.plan_key(ctx, recipe, model.sha256, gpu)
        calib_path = None
        if recipe.calibrator:
            assert calib is not None
            calib_path = ctx.cache.path_for(
                "trt-calib",
                derived_key("trt-calib", {"calib": calib.digest(), **key, "build": None}),
                ".cache",
            )
        timing_key = {"trt_version": trt.__version__, "gpu": gpu.name, "cc": gpu.compute_capability}

        def build(tmp: Path) -> dict[str, Any]:
            return build_plan(
                model.path,
                tmp,
                ctx.spec,
                recipe,
                ctx.model_spec,
                cache=ctx.cache,
                timing_cache_key=timing_key,
                calibration=calib,
                calib_cache_path=calib_path,
                quiet=ctx.verbose < 0,
            )

        try:
            art = ctx.cache.get_or_build("trt-plan", key, ".plan", build)
        except BuildFailed as exc:
            exc.recipe = recipe
            raise
        if art.meta.get("trt_version") != trt.__version__:  # defence in depth: never load a foreign plan
            raise BuildFailed(f"cached plan {art.path} was built by TensorRT {art.meta.get('trt_version')}")
        return art, recipe, gpu, recipe_seconds

    def build(self, ctx: BuildContext) -> TrtEngine:
        art, recipe, gpu, recipe_seconds = self.plan(ctx)
        trt = versions.trt
        info = EngineInfo(
            backend=self.name,
            backend_version=trt.__version__,
            recipe=recipe,
            build_seconds=float(art.meta.get("build_seconds_trt", art.build_seconds)),
            cached=not art.built,
            plan_bytes=art.size,
            layers=art.meta.get("network_layers"),
            warnings=list(art.meta.get("build_warnings", [])),
            extra={
                "recipe_seconds": round(recipe_seconds, 4),
                "gpu": gpu.name,
                # the GPU's own, or the architecture an ahead-of-time (RTX) build targeted
                "compute_capability": gpu.compute_capability
                if ctx.device.is_cuda
                else ctx.spec.compute_capability,
                "trt_family": versions.family(trt.__version__),
                "plan_key": art.key[:16],
                "runnable": ctx.device.is_cuda,
                "sparse_weights": ctx.spec.sparse_weights,
                "sparsity_log": art.meta.get("sparsity_log") or None,
            },
        )
        if not ctx.device.is_cuda:
            raise BuiltNotRunnable(
                f"built for compute capability {ctx.spec.compute_capability} "
                f"({art.size} bytes, {info.build_seconds:.2f} s); not runnable here: no CUDA GPU",
                info,
            )
        return load_engine(art.path, ctx.device, info, ctx.spec.allow_host_code, ctx.onnx.input_names)


class TensorRTRTXBackend(TensorRTBackend):
    """TensorRT for RTX GPUs: the same API and the same network/profile/config code, strongly typed only.

    It compiles for named GPU architectures (``--trt-compute-capability``), so it builds real plans on a
    machine without a GPU; such cases are recorded as *built* (build time, plan size), never timed.
    """

    name = "tensorrt_rtx"
    module_name = "tensorrt_rtx"
    builds_without_gpu = True  # without a GPU: everything but running is checked, and the plan is built

    def recipe(self, spec: BuildSpec) -> Recipe:
        trt = versions.trt
        self._load()
        if spec.typing == "weak":
            raise Unsupported("TensorRT-RTX is strongly typed only")
        return versions.choose_recipe(dataclasses.replace(spec, typing="strong"), trt.__version__)


__all__ = [
    "TensorRTBackend",
    "TensorRTRTXBackend",
    "TrtEngine",
    "build_plan",
    "choose_recipe",
    "engine_facts",
    "load_tensorrt",
]
