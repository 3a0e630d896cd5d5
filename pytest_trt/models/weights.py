"""Loading a model's weights.

``pretrained`` loads a model's published weights (torchvision's through torchvision's own download
mechanism and the torch hub cache, a ``weights_url`` likewise, in-package weights from their package),
``random`` is a seeded initialisation with BatchNorm statistics re-estimated, ``file:PATH`` loads a state
dict with ``torch.load(weights_only=True)``, and ``auto`` (default) downloads published weights and falls
back to seeded random weights only when that fails, saying why.  The source actually used is returned so
that every result records it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pytest_trt.models import networks, pruning
from pytest_trt.models.registry import ModelSpec


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A .safetensors file as tensors: an 8-byte header length, a JSON header, raw little-endian data."""
    import json
    import struct

    import numpy as np

    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] not in dtypes:
            continue
        a, b = info["data_offsets"]
        arr = np.frombuffer(
            raw,
            dtype=dtypes[info["dtype"]],
            count=(b - a) // np.dtype(dtypes[info["dtype"]]).itemsize,
            offset=8 + n + a,
        )
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out


class WeightsUnavailable(RuntimeError):
    """Requested weights cannot be loaded here (offline, missing file); the message says what to do."""


WEIGHT_CHOICES = ("auto", "pretrained", "random", "file:PATH")


def _torchvision_weights(spec: ModelSpec) -> Any:
    import torchvision.models as tvm

    assert spec.torchvision_weights
    enum_name, member = spec.torchvision_weights.split(".")
    enum = getattr(tvm, enum_name, None)
    if enum is None:
        import torchvision.models.segmentation as tvs

        enum = getattr(tvs, enum_name)
    return getattr(enum, member)


def has_published_weights(spec: ModelSpec) -> bool:
    return spec.trainer is not None or spec.torchvision_weights is not None or spec.weights_url is not None


def weights_kind(source: str) -> str:
    """pretrained | random | file | trained-in-package: what a result's weights are, for readers of the JSON."""
    if source.startswith(("pretrained:", "torchvision:", "url:")):
        return "pretrained"
    return source.split("(", 1)[0].split(":", 1)[0]


def is_trained(source: str) -> bool:
    return not source.startswith("random")


def load_model(
    spec: ModelSpec, weights: str = "auto", seed: int = 0, known_failure: str | None = None
) -> tuple[nn.Module, str]:
    """:func:`load_dense`, then pruned to 2:4 for a ``_sparse24`` variant (the source says by what)."""
    model, source = load_dense(spec, weights, seed, known_failure)
    if spec.prune is None:
        return model, source
    model, tool = pruning.prune_2to4(model)
    return model, f"{source}; pruned {spec.prune} by {tool}"


def load_dense(
    spec: ModelSpec, weights: str = "auto", seed: int = 0, known_failure: str | None = None
) -> tuple[nn.Module, str]:
    """Instantiate ``spec`` in eval mode with the requested weights; return (model, weight source).

    ``auto`` downloads published weights (progress on stderr, the hub cache reused) and falls back to
    seeded random weights when that fails; the source then says why.  ``known_failure`` is a download
    failure already seen this session (it is not retried).
    """
    if spec.is_onnx:
        raise WeightsUnavailable(f"model {spec.name} is an ONNX file: it has no PyTorch module to load")
    torch.manual_seed(seed)
    model = spec.factory()
    if spec.user and not weights.startswith("file:"):
        # The user's factory made the module with its weights: never replaced, never re-estimated.
        return model.eval(), ("user-module" if spec.trained else "random(user-module)")
    if weights == "auto":
        if not has_published_weights(spec):
            return _random(model, spec, seed), f"random(seed={seed})+bn-stats"
        reason = known_failure
        if reason is None:
            try:
                return model.eval(), _load_pretrained(spec, model, seed, progress=True)
            except WeightsUnavailable as exc:
                reason = str(exc)
            torch.manual_seed(seed)
            model = spec.factory()
        return _random(model, spec, seed), f"random(seed={seed})+bn-stats; auto: {reason}"
    if weights == "random":
        source = f"random(seed={seed})+bn-stats"
        _random(model, spec, seed)
    elif weights == "pretrained":
        source = _load_pretrained(spec, model, seed, progress=True)
    elif weights.startswith("file:"):
        path = Path(weights[5:]).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(f"--trt-weights {weights}: no such file {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle objects
            model.load_state_dict(state)
        except Exception as exc:
            raise WeightsUnavailable(
                f"--trt-weights {weights}: cannot load a state dict for {spec.name} from {path}: {exc}"
            ) from exc
        from pytest_trt.cache import sha256_file

        source = f"file:{path.name}@{sha256_file(path)[:12]}"
    else:
        raise WeightsUnavailable(f"--trt-weights {weights!r}: choose one of {', '.join(WEIGHT_CHOICES)}")
    return model.eval(), source


def _random(model: nn.Module, spec: ModelSpec, seed: int) -> nn.Module:
    calibrate_batchnorm(model, spec, seed)
    return model.eval()


def fetch_weights(spec: ModelSpec) -> str | None:
    """Download ``spec``'s published weights into the hub cache now; the failure reason, or None."""
    if spec.trainer is not None or not has_published_weights(spec):
        return None
    try:
        _state_dict(spec, progress=True)
    except WeightsUnavailable as exc:
        return str(exc)
    return None


def calibrate_batchnorm(
    model: nn.Module, spec: ModelSpec, seed: int, batches: int = 2, batch: int = 8
) -> None:
    """Give seeded random weights realistic activation ranges by estimating BatchNorm statistics.

    Freshly initialised BatchNorm layers hold mean 0 / variance 1, which is wrong for random conv
    weights: activations then shrink or grow layer after layer (MobileNetV2's logits end near 1e-9,
    below fp16's normal range).  A few forward passes on synthetic inputs in train mode fix the
    running statistics, as training would, so precision effects look like those of a real model.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or spec.input.dtype != "float32":
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    shape = spec.input.shape
    if len(shape) == 3 and spec.input.hw_range is None:
        shape = (shape[0], min(shape[1], 128), min(shape[2], 128))  # BN statistics need no full resolution
    elif len(shape) == 3 and spec.input.hw_range is not None:
        side = max(spec.input.hw_range[0], spec.input.hw_multiple * 4)
        shape = (shape[0], min(shape[1], side), min(shape[2], side))
    gen = torch.Generator().manual_seed(seed + 1)
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(batch, *shape, generator=gen))
    model.eval()


def _state_dict(spec: ModelSpec, progress: bool) -> dict[str, torch.Tensor]:
    """Published weights through torch's hub mechanism: downloaded once, then read from the hub cache."""
    if spec.torchvision_weights is not None:
        w = _torchvision_weights(spec)
        url, label = w.url, spec.torchvision_weights
    else:
        assert spec.weights_url is not None
        url, label = spec.weights_url, spec.weights_url
    try:
        if spec.torchvision_weights is not None:
            state: dict[str, torch.Tensor] = w.get_state_dict(progress=progress, check_hash=True)
        else:
            state = torch.hub.load_state_dict_from_url(
                url, map_location="cpu", progress=progress, weights_only=True
            )
    except Exception as exc:
        ckpt = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        raise WeightsUnavailable(
            f"download of {label} for {spec.name} failed ({type(exc).__name__}: {str(exc)[:160]}); "
            f"place the checkpoint at {ckpt}, or use --trt-weights random"
        ) from exc
    return state


def _load_pretrained(spec: ModelSpec, model: nn.Module, seed: int, progress: bool = True) -> str:
    if spec.trainer is not None:
        spec.trainer(model, seed)
        return spec.weights_source or f"trained-in-package(seed={seed})"
    if not has_published_weights(spec):
        raise WeightsUnavailable(
            f"model {spec.name} has no published weights; use --trt-weights random or file:PATH"
        )
    state = _state_dict(spec, progress)
    target = model.model if isinstance(model, networks.SegHead) else model
    try:
        target.load_state_dict(state, strict=spec.torchvision_weights is None)
    except RuntimeError as exc:
        raise WeightsUnavailable(f"weights for {spec.name} do not fit the model: {str(exc)[:300]}") from exc
    if spec.torchvision_weights is not None:
        return f"torchvision:{spec.torchvision_weights}"
    return f"url:{os.path.basename(spec.weights_url or '')}"
