"""PyTorch -> ONNX export, validated with ``onnx.checker`` and stored in the artifact cache.

The cache key holds the model, its weight source, opset, dynamic axes, exporter and library versions,
so a change in any of them exports anew.  Facts about the exported graph (node count, parameter
count, file size) are kept in the sidecar: they are the "base" side of the engine/base ratios.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from pytest_trt.cache import Artifact, ArtifactCache
from pytest_trt.models.zoo import ModelSpec

DEFAULT_OPSET = 18
MAX_DYNAMIC_BATCH = 4096


class OnnxModelError(ValueError):
    """An ONNX file is missing, truncated or not ONNX; the message names it and what to do."""


@dataclass(frozen=True)
class ExportSettings:
    opset: int = DEFAULT_OPSET
    dynamic_batch: bool = True
    dynamic_hw: bool = False
    static_batch: int = 1  # used when dynamic_batch is False
    hw: int | None = None  # export resolution (square); None: the spec's default
    exporter: str = "auto"  # auto (dynamo, then torchscript on failure) | dynamo | torchscript

    def key(self) -> dict[str, Any]:
        return {
            "opset": self.opset,
            "dynamic_batch": self.dynamic_batch,
            "dynamic_hw": self.dynamic_hw,
            "static_batch": None if self.dynamic_batch else self.static_batch,
            "hw": self.hw,
            "exporter": self.exporter,
        }


@dataclass(frozen=True)
class OnnxModel:
    path: Path
    sha256: str
    input_name: str
    output_names: tuple[str, ...]
    node_count: int
    param_count: int
    file_size: int
    opset: int
    exporter: str
    built: bool
    input_names: tuple[str, ...] = ()  # every graph input, in order (input_name is the first)

    def facts(self) -> dict[str, Any]:
        return {
            "onnx_sha256": self.sha256[:16],
            "onnx_nodes": self.node_count,
            "onnx_params": self.param_count,
            "onnx_bytes": self.file_size,
            "opset": self.opset,
            "exporter": self.exporter,
        }


def graph_facts(model: onnx.ModelProto) -> dict[str, int]:
    params = sum(int(np.prod(init.dims)) for init in model.graph.initializer)
    return {"node_count": len(model.graph.node), "param_count": params}


def external_files(model: onnx.ModelProto, base: Path) -> tuple[Path, ...]:
    """The external data files an ONNX model refers to (relative to its directory)."""
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    seen: dict[str, None] = {}
    for t in _get_all_tensors(model):
        if uses_external_data(t):
            loc = next((e.value for e in t.external_data if e.key == "location"), None)
            if loc:
                seen.setdefault(loc)
    return tuple(base / loc for loc in seen)


def load_checked(path: Path | str) -> onnx.ModelProto:
    """Load and check an ONNX file, turning every failure into a message that names the file."""
    p = Path(path)
    if not p.exists():
        raise OnnxModelError(f"ONNX file {p} does not exist; export the model first or fix the path")
    if p.stat().st_size == 0:
        raise OnnxModelError(
            f"ONNX file {p} is empty (a failed or interrupted write?); delete it and re-export"
        )
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # protobuf raises DecodeError, onnx may raise others
        raise OnnxModelError(
            f"ONNX file {p} cannot be parsed ({type(exc).__name__}: {exc}); it is truncated or not an "
            "ONNX model: re-export it"
        ) from exc
    if not model.graph.node:
        raise OnnxModelError(f"ONNX file {p} has an empty graph; it is not a usable model: re-export it")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise OnnxModelError(f"ONNX file {p} fails onnx.checker: {exc}") from exc
    return model


def _dynamic_spec(settings: ExportSettings, spec: ModelSpec) -> tuple[Any, Any]:
    """(dynamic_shapes for the dynamo exporter, dynamic_axes for the TorchScript exporter), per input
    in ``forward`` order; one batch dimension is shared by every input."""
    batch = torch.export.Dim("batch", min=1, max=MAX_DYNAMIC_BATCH) if settings.dynamic_batch else None
    shapes: list[dict[int, Any]] = []
    axes: dict[str, dict[int, str]] = {}
    for inp in spec.inputs:
        dims: dict[int, Any] = {}
        names: dict[int, str] = {}
        if batch is not None:
            dims[0], names[0] = batch, "batch"
        if settings.dynamic_hw and inp.hw_range:
            lo, _, hi = inp.hw_range
            m = inp.hw_multiple
            labels = ("seq",) if inp.size_unit == "tok" else ("height", "width")
            for ax, nm in zip((a + 1 for a in inp.size_axes), labels, strict=True):
                if m > 1:  # pooling networks need H, W divisible by m; say so to torch.export
                    dims[ax] = m * torch.export.Dim(f"{nm}_div{m}", min=max(1, lo // m), max=hi // m)
                else:
                    dims[ax] = torch.export.Dim(nm, min=lo, max=hi)
                names[ax] = nm
        shapes.append(dims)
        if names:
            axes[inp.name] = names
    if not any(shapes):
        return None, None
    for out in spec.exported_output_names or []:
        if batch is not None:
            axes[out] = {0: "batch"}
    return tuple(shapes), axes


def _export(
    model: nn.Module,
    examples: tuple[torch.Tensor, ...],
    out: Path,
    settings: ExportSettings,
    spec: ModelSpec,
) -> str:
    dyn_shapes, dyn_axes = _dynamic_spec(settings, spec)
    input_names = [i.name for i in spec.inputs]
    exporters = ["dynamo", "torchscript"] if settings.exporter == "auto" else [settings.exporter]
    errors = []
    for name in exporters:
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")  # exporter deprecation chatter, not the user's concern
                if name == "dynamo":
                    torch.onnx.export(
                        model,
                        examples,
                        str(out),
                        dynamo=True,
                        input_names=input_names,
                        output_names=spec.exported_output_names,
                        dynamic_shapes=dyn_shapes,
                        opset_version=settings.opset,
                        external_data=False,
                    )
                else:
                    torch.onnx.export(
                        model,
                        examples,
                        str(out),
                        dynamo=False,
                        input_names=input_names,
                        output_names=spec.exported_output_names,
                        dynamic_axes=dyn_axes,
                        opset_version=min(settings.opset, 17),
                    )
            load_checked(out)  # an exporter may write an invalid graph (e.g. clashing names): try the next
            return name
        except Exception as exc:
            errors.append(f"{name}: {type(exc).__name__}: {str(exc)[:500]}")
    raise RuntimeError(f"ONNX export of {spec.name} failed:\n" + "\n".join(errors))


def examples_for(
    spec: ModelSpec, batch: int, hw: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """Seeded example inputs of every declared input (the exporter traces with them)."""
    rng = np.random.default_rng(seed)
    shapes = spec.sample_shapes(hw)
    return tuple(
        torch.from_numpy(np.ascontiguousarray(inp.draw(batch, rng, shape)))
        for inp, shape in zip(spec.inputs, shapes, strict=True)
    )


def export_onnx(
    cache: ArtifactCache,
    spec: ModelSpec,
    model: nn.Module,
    weight_source: str,
    settings: ExportSettings,
) -> OnnxModel:
    shape = spec.input.with_hw(settings.hw)
    batch = 2 if settings.dynamic_batch else settings.static_batch  # 2: keeps batch symbolic in tracing
    key = {
        "model": spec.name,
        "weights": weight_source,
        "input_shape": list(shape),
        **({"inputs": [[i.name, list(i.shape), i.dtype] for i in spec.inputs]} if spec.user else {}),
        **settings.key(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
    }

    used: dict[str, str] = {}

    def build(tmp: Path) -> dict[str, Any]:
        examples = examples_for(spec, batch, settings.hw)
        tmp_onnx = tmp.with_suffix(".export.onnx")
        try:
            used["exporter"] = _export(model, examples, tmp_onnx, settings, spec)
            m = load_checked(tmp_onnx)
            # Re-save as one self-contained file (no external data) under the temp name.
            onnx.save_model(m, str(tmp))
        finally:
            tmp_onnx.unlink(missing_ok=True)
            Path(str(tmp_onnx) + ".data").unlink(missing_ok=True)
        return {"exporter": used["exporter"], **graph_facts(m)}

    art = cache.get_or_build("onnx", key, ".onnx", build)
    return onnx_model_from_artifact(art, settings.opset)


def onnx_model_from_artifact(art: Artifact, opset: int) -> OnnxModel:
    m = onnx.load(str(art.path), load_external_data=False)
    facts = {"node_count": art.meta.get("node_count"), "param_count": art.meta.get("param_count")}
    if facts["node_count"] is None or facts["param_count"] is None:
        facts = dict(graph_facts(m))
    init_names = {i.name for i in m.graph.initializer}
    inputs = [i.name for i in m.graph.input if i.name not in init_names]
    return OnnxModel(
        path=art.path,
        sha256=art.sha256,
        input_name=inputs[0],
        input_names=tuple(inputs),
        output_names=tuple(o.name for o in m.graph.output),
        node_count=int(facts["node_count"] or 0),
        param_count=int(facts["param_count"] or 0),
        file_size=art.size,
        opset=opset,
        exporter=str(art.meta.get("exporter", "unknown")),
        built=art.built,
    )
