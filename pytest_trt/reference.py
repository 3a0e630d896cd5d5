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

The verdict rule itself is in :mod:`pytest_trt.gates` (pure numpy); this module only computes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pytest_trt.recipes import Recipe

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32, "tf32": torch.float32}


@dataclass(frozen=True)
class Reference:
    """Reference outputs (``None`` when they could not be computed: ``reason`` says why)."""

    kind: str
    outputs: np.ndarray | None
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


@torch.inference_mode()
def torch_outputs(
    module: nn.Module, x: np.ndarray, device: str, gate_class: str, chunk: int = 16
) -> np.ndarray:
    """``module`` run at ``gate_class``'s arithmetic (a copy is cast; the original is left untouched)."""
    dtype = _DTYPES[gate_class]
    m = copy.deepcopy(module).to(device=device, dtype=dtype).eval()
    prev = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = gate_class == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        outs = []
        for i in range(0, len(x), chunk):
            xi = torch.from_numpy(x[i : i + chunk]).to(device)
            if xi.is_floating_point():
                xi = xi.to(dtype)
            y = m(xi)
            if isinstance(y, dict):
                y = y["out"]
            outs.append(y.float().cpu().numpy())
        return np.concatenate(outs)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev
        del m


def graph_outputs(path: Path, x: np.ndarray, chunk: int = 16) -> np.ndarray:
    """ONNX Runtime CPU with every graph optimization off: the ONNX graph's own arithmetic."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    fixed = sess.get_inputs()[0].shape[0]
    step = fixed if isinstance(fixed, int) and fixed > 0 else chunk
    outs = []
    for i in range(0, len(x), step):
        xi = x[i : i + step]
        n = len(xi)
        if n < step and isinstance(fixed, int):  # a static-batch graph: pad, then drop the padding
            xi = np.concatenate([xi, np.repeat(xi[-1:], step - n, axis=0)])
        outs.append(np.asarray(sess.run(None, {name: xi})[0])[:n].astype(np.float32))
    return np.concatenate(outs)


def int8_graph(engine_recipe: Recipe, default: Callable[[], Recipe]) -> tuple[Recipe, bool]:
    """The Q/DQ recipe whose graph is the int8 reference, and whether it is the engine's own graph."""
    if engine_recipe.graph == "qdq-int8":
        return engine_recipe, True
    return default(), False


def describe(gate_class: str, device: str) -> str:
    return {
        "fp32": "strict fp32 baseline (PyTorch)",
        "tf32": f"PyTorch fp32 with TF32 on {device}",
        "fp16": f"PyTorch fp16 on {device}",
        "bf16": f"PyTorch bf16 on {device}",
        "int8": "ONNX Runtime CPU, Q/DQ graph unfused (exact arithmetic)",
    }.get(gate_class, gate_class)
