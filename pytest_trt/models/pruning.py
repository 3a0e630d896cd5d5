"""2:4 structured sparsity: prune a PyTorch model to the pattern TensorRT's sparse kernels use, and check
the pattern (what pruning cost is measured in :mod:`pytest_trt.quality.pruning_loss`).

The pattern: in every group of four consecutive weights along a layer's input channels (per output
channel and kernel position), at least two are zero.  Pruning is NVIDIA ModelOpt's ``sparse_magnitude``
mode (keep the two largest of each four; no data, no fine-tuning), then ``export`` makes the masks
permanent, so the exported ONNX is an ordinary dense graph with zeros in it.  onnxruntime and OpenVINO
run that graph dense; TensorRT is asked for sparse kernels with ``BuilderFlag.SPARSE_WEIGHTS``.

A pruned model is a model variant, ``<model>_sparse24``: its engines are judged by every gate against the
*pruned* PyTorch model (is the engine faithful to the network it was given?), while what pruning itself
cost -- the pruned model against the dense one -- is reported in ``quality.sparsity`` as ``pruning_*``
metrics, which gate only when the user sets one (``--trt-gate '*:pruning_top1_agreement>=0.9'``):
magnitude pruning without fine-tuning is expected to lose accuracy, and how much is the finding.
"""

from __future__ import annotations

import contextlib
import io
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

SUFFIX = "_sparse24"
PATTERN = "2:4"


class SparsityUnavailable(RuntimeError):
    """The pruning tool is missing or the model cannot be pruned; the message says what to do."""


def split(name: str) -> tuple[str, bool]:
    """(dense model name, whether ``name`` is its 2:4 variant)."""
    return (name[: -len(SUFFIX)], True) if name.endswith(SUFFIX) else (name, False)


def unavailable() -> str | None:
    """Why 2:4 variants cannot be made here (the pruning tool is not installed), or None; read without
    importing ModelOpt, so collection stays light."""
    import importlib.util

    if importlib.util.find_spec("modelopt") is None:
        return "2:4 pruning needs NVIDIA ModelOpt, not installed: pip install 'pytest-trt[modelopt]'"
    return None


def prune_2to4(model: nn.Module) -> tuple[nn.Module, str]:
    """``model`` pruned to 2:4 in place by ModelOpt's magnitude mode; (model, tool description)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # ModelOpt prints a line per layer
            import modelopt.torch.sparsity as mts

            pruned = mts.sparsify(model, "sparse_magnitude")
            pruned = mts.export(pruned)  # masks folded into the weights: a plain nn.Module again
    except ImportError as exc:
        raise SparsityUnavailable(
            f"2:4 pruning needs NVIDIA ModelOpt ({exc}): pip install 'pytest-trt[modelopt]'"
        ) from exc
    import modelopt

    return pruned.eval(), f"modelopt {modelopt.__version__} sparse_magnitude"


def _groups(w: torch.Tensor) -> torch.Tensor | None:
    """The weight as rows of 4 along input channels (None when input channels are not a multiple of 4)."""
    if w.dim() < 2 or w.shape[1] % 4:
        return None
    if w.dim() > 2:  # conv: O x I x k... -> groups along I for each output channel and kernel position
        w = w.movedim(1, -1)
    return w.reshape(-1, 4)


def structure(model: nn.Module) -> dict[str, Any]:
    """Which weight layers (conv/linear) hold the 2:4 pattern, and how many weights are zero."""
    layers = eligible = patterned = 0
    zeros = total = layer_zeros = layer_total = 0
    for p in model.parameters():
        total += p.numel()
        zeros += int((p == 0).sum())
    for m in model.modules():
        if not isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            continue
        w = m.weight.detach()
        layers += 1
        g = _groups(w)
        if g is None:
            continue
        eligible += 1
        if bool(((g == 0).sum(1) >= 2).all()):
            patterned += 1
            layer_zeros += int((w == 0).sum())
            layer_total += w.numel()
    return {
        "pattern": PATTERN,
        "weight_layers": layers,
        "eligible_layers": eligible,  # input channels a multiple of 4
        "layers_2to4": patterned,
        "zero_fraction": zeros / total if total else 0.0,
        "zero_fraction_in_2to4_layers": layer_zeros / layer_total if layer_total else 0.0,
        "params": total,
        "nonzero_params": total - zeros,
    }


def file_sizes(path: Path) -> dict[str, int]:
    """Bytes of a model file and of it deflated: zeros cost no storage once compressed."""
    data = path.read_bytes()
    return {"bytes": len(data), "deflated_bytes": len(zlib.compress(data, 6))}
