"""Same-recipe references: what a correct engine of a given precision outputs on the evaluation samples.

Judging an fp16 or int8 engine only against strict fp32 is wrong in both directions: a deep network
with random weights amplifies honest rounding far past any fixed tolerance, while a loose int8
tolerance lets real corruption through.  So every engine is also compared with a trusted reference
that uses the *same numeric recipe*:

* ``fp32`` (strict): the fp32 baseline itself;
* ``tf32``: PyTorch with TF32 matmuls/convolutions on the same CUDA device;
* ``fp16`` / ``bf16``: the PyTorch module cast to that dtype, on the session's device;
* ``int8``: ONNX Runtime (CPU) executing the very Q/DQ graph the engine was built from, with graph
  optimizations off, i.e. the graph's exact arithmetic (fake quantization in float).  Fused integer
  kernels are an implementation of that graph, not its definition (on x86 CPUs without VNNI the CPU
  provider's fused kernels saturate).  An engine built from that graph has an *exact* reference; an
  implicitly calibrated TensorRT int8 engine is compared with the Q/DQ graph of the same calibration
  data, which is a same-precision reference but not an exact one.

The verdict rule itself is in :mod:`pytest_trt.quality.gates` (pure numpy); this module only computes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pytest_trt.engines.recipes import Recipe

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32, "tf32": torch.float32}


@dataclass(frozen=True)
class Reference:
    """Reference outputs (``None`` when they could not be computed: ``reason`` says why)."""

    kind: str
    outputs: list[np.ndarray] | None  # one array per model output
    exact: bool = False  # executes the very graph the engine was built from
    reason: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "exact": self.exact,
            "available": self.outputs is not None,
            "reason": self.reason,
        }


def unavailable(kind: str, reason: str) -> Reference:
    return Reference(kind, None, reason=reason)


def as_list(y: Any) -> list[torch.Tensor]:
    """A module's outputs as a list: a tensor, a tuple/list of them, or a dict (torchvision's ``out`` first)."""
    if isinstance(y, torch.Tensor):
        return [y]
    if isinstance(y, dict):
        return [y["out"]] if "out" in y else list(y.values())
    return [t for t in y]


def stack(chunks: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Per-chunk output lists -> one array per output."""
    return [np.concatenate([c[k] for c in chunks]) for k in range(len(chunks[0]))]


@torch.inference_mode()
def torch_outputs(
    module: nn.Module, x: np.ndarray | tuple[np.ndarray, ...], device: str, gate_class: str, chunk: int = 16
) -> list[np.ndarray]:
    """``module`` run at ``gate_class``'s arithmetic (a copy is cast; the original is left untouched)."""
    dtype = _DTYPES[gate_class]
    m = copy.deepcopy(module).to(device=device, dtype=dtype).eval()
    prev = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = gate_class == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    xs = (x,) if isinstance(x, np.ndarray) else x
    try:
        outs = []
        for i in range(0, len(xs[0]), chunk):
            args = [torch.from_numpy(a[i : i + chunk]).to(device) for a in xs]
            args = [a.to(dtype) if a.is_floating_point() else a for a in args]
            outs.append([t.float().cpu().numpy() for t in as_list(m(*args))])
        return stack(outs)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev
        del m


def own_graph(engine_recipe: Recipe, default: Callable[[], Recipe]) -> tuple[Recipe, bool]:
    """The graph recipe whose unfused run is the reference (int8 Q/DQ; fp16/bf16 for ONNX-only models),
    and whether it is the engine's own graph (then the reference is exact)."""
    if engine_recipe.graph != "as-exported" and engine_recipe.graph == default().graph:
        return engine_recipe, True
    return default(), False


def describe(gate_class: str, device: str, onnx_only: bool = False) -> str:
    if onnx_only:  # no PyTorch module: ONNX Runtime on CPU runs the graph (or its recipe) unfused
        return {
            "fp32": "strict fp32 baseline (ONNX Runtime CPU, graph optimizations off: no PyTorch module)",
            "int8": "ONNX Runtime CPU, Q/DQ graph unfused (exact arithmetic)",
        }.get(gate_class, f"ONNX Runtime CPU, {gate_class} graph unfused")
    return {
        "fp32": "strict fp32 baseline (PyTorch)",
        "tf32": f"PyTorch fp32 with TF32 on {device}",
        "fp16": f"PyTorch fp16 on {device}",
        "bf16": f"PyTorch bf16 on {device}",
        "int8": "ONNX Runtime CPU, Q/DQ graph unfused (exact arithmetic)",
    }.get(gate_class, gate_class)
