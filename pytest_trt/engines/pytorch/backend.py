"""PyTorch eager backend (the baseline framework) and its ``torch.compile`` variant.

It runs the nn.Module itself, not the ONNX file: that is what a user ships without an engine, and
the reference point for every speed-up.  fp16/bf16 cast the weights; int8 is not offered (PyTorch
eager has no comparable int8 inference path), so those cases skip with that reason.
"""

from __future__ import annotations

import shutil
import time

import torch

from pytest_trt.engines.protocol import (
    Availability,
    Backend,
    BuildContext,
    BuildFailed,
    BuildSpec,
    Device,
    EngineInfo,
)
from pytest_trt.engines.pytorch.runner import TorchEngine
from pytest_trt.engines.recipes import Recipe
from pytest_trt.models.zoo import ModelSpec

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchBackend(Backend):
    name = "torch"
    precisions = ("fp32", "fp16", "bf16")
    consumes_onnx = False
    compile_mode: str | None = None
    graphs = True  # may capture CUDA graphs (--trt-cuda-graph); torch_eager never does

    def availability(self) -> Availability:
        return Availability(True, torch.__version__)

    def unsupported(self, spec: BuildSpec, model: ModelSpec, device: Device) -> str | None:
        if spec.precision == "int8":
            return "torch eager has no int8 engine path; int8 runs on onnxruntime (QDQ) or tensorrt"
        if spec.precision == "fp16" and not device.is_cuda:
            return "fp16 eager on CPU is not a deployment target (no fast kernels); use a GPU or bf16"
        return super().unsupported(spec, model, device)

    def recipe(self, spec: BuildSpec) -> Recipe:
        if self.compile_mode:
            return Recipe(
                spec.precision, f"torch-{spec.precision}-compile", tool=f"torch.compile({self.compile_mode})"
            )
        tool = "module.to(dtype)" + ("" if self.graphs else ", eager launches (no CUDA graph)")
        return Recipe(spec.precision, f"torch-{spec.precision}-cast", tool=tool)

    def build(self, ctx: BuildContext) -> TorchEngine:
        t0 = time.perf_counter()
        dtype = _DTYPES[ctx.spec.precision]
        # TF32 for fp32 matmuls/convs: the same switch TensorRT has, recorded in the recipe.
        torch.backends.cuda.matmul.allow_tf32 = ctx.spec.tf32
        torch.backends.cudnn.allow_tf32 = ctx.spec.tf32
        try:
            module = ctx.torch_model().to(device=ctx.device.torch, dtype=dtype).eval()
            if self.compile_mode:
                compiled = torch.compile(
                    module, mode=self.compile_mode, dynamic=ctx.spec.profile == "dynamic"
                )
                module = compiled  # type: ignore[assignment]  # an OptimizedModule behaves as the module
        except torch.cuda.OutOfMemoryError as exc:
            raise BuildFailed(
                f"out of memory moving {ctx.model_spec.name} to {ctx.device.torch}", oom=True
            ) from exc
        params = sum(p.numel() for p in module.parameters())
        info = EngineInfo(
            backend=self.name,
            backend_version=torch.__version__,
            recipe=self.recipe(ctx.spec),
            build_seconds=time.perf_counter() - t0,
            engine_params=params,
            extra={"tf32": ctx.spec.tf32},
        )
        return TorchEngine(module, ctx.device, dtype, info, graphs=self.graphs)


class TorchEagerBackend(TorchBackend):
    """Plain PyTorch as users run it: every kernel launched from Python, never a CUDA graph."""

    name = "torch_eager"
    graphs = False


class TorchCompileBackend(TorchBackend):
    name = "torch_compile"
    # "default": max-autotune compiles for many minutes per shape, too slow for a benchmark matrix.
    compile_mode = "default"

    def availability(self) -> Availability:
        if not hasattr(torch, "compile"):
            return Availability(False, reason="this torch has no torch.compile")
        return Availability(True, torch.__version__)

    def unsupported(self, spec: BuildSpec, model: ModelSpec, device: Device) -> str | None:
        if not device.is_cuda and shutil.which("cc") is None and shutil.which("gcc") is None:
            return "torch.compile on CPU needs a C compiler (cc/gcc) on PATH"
        return super().unsupported(spec, model, device)
