"""A user's ONNX file as a model: its inputs and outputs read from the graph, what each output holds,
its content hashed; the shapes the user gives are resolved by :mod:`pytest_trt.models.onnx_shapes`.

Integer inputs used as ``Gather`` indices into a table (token ids, type ids) are drawn below the
table's size; other integer inputs from [0, 2) when named like a mask, else [0, 16).

The file is identified by the SHA-256 of its bytes *and* of its external data files (weights stored
beside the graph, as models over 2 GB are), so every derived artifact (static-batch variant, fp16 or
int8 graph, engine) is cached by content: moving the file reuses them, changing its weights does not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from pytest_trt.cache import ArtifactCache, sha256_file
from pytest_trt.models.export import (
    OnnxModel,
    OnnxModelError,
    external_files,
    graph_facts,
    onnx_model_from_artifact,
)
from pytest_trt.models.onnx_shapes import Dim, Shapes, resolve
from pytest_trt.models.zoo import ModelSpec


@dataclass(frozen=True)
class GraphTensor:
    name: str
    dtype: str
    dims: tuple[Dim, ...]

    def describe(self) -> str:
        return f"{self.name}: {self.dtype}[{', '.join('?' if d is None else str(d) for d in self.dims)}]"


@dataclass(frozen=True)
class Graph:
    path: Path
    inputs: tuple[GraphTensor, ...]
    outputs: tuple[GraphTensor, ...]
    external: tuple[Path, ...]  # external data files, in the graph's order
    int_ranges: Mapping[str, tuple[int, int]]  # integer inputs used as Gather indices -> [0, table size)
    output_kinds: tuple[str, ...] = ()  # per output: probability | integer | values (output_kinds())

    def describe_inputs(self) -> str:
        return "; ".join(t.describe() for t in self.inputs)


def _tensors(values: Any) -> tuple[GraphTensor, ...]:
    out = []
    for v in values:
        tt = v.type.tensor_type
        try:
            dtype = str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)))
        except Exception:
            dtype = onnx.TensorProto.DataType.Name(tt.elem_type).lower()
        dims: list[Dim] = []
        for d in tt.shape.dim:
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            else:
                dims.append(d.dim_param or None)
        out.append(GraphTensor(v.name, dtype, tuple(dims)))
    return tuple(out)


# ops that pass a tensor's values through unchanged in kind (a probability stays a probability)
_PASS_THROUGH = {
    "Identity",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Slice",
    "Gather",
    "Concat",
}
_PROBABILITY = {"Sigmoid", "Softmax", "HardSigmoid"}


def output_kinds(model: onnx.ModelProto, outputs: tuple[GraphTensor, ...]) -> tuple[str, ...]:
    """What each output holds, read from the graph: ``probability`` (made by a Sigmoid or Softmax, maybe
    through reshapes: values in [0, 1], where closeness is relative to that range), ``integer`` (labels,
    indices) or ``values`` (logits, features, regression fields)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    kinds = []
    for t in outputs:
        if not t.dtype.startswith(("float", "bfloat")):
            kinds.append("integer")
            continue
        node, seen = producer.get(t.name), 0
        while node is not None and node.op_type in _PASS_THROUGH and node.input and seen < 32:
            node, seen = producer.get(node.input[0]), seen + 1
        kinds.append("probability" if node is not None and node.op_type in _PROBABILITY else "values")
    return tuple(kinds)


def _gather_ranges(model: onnx.ModelProto, names: set[str]) -> dict[str, tuple[int, int]]:
    """Integer inputs that index a constant table with Gather (directly or through Cast): [0, rows)."""
    tables = {i.name: tuple(i.dims) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    tables[n.output[0]] = tuple(a.t.dims)
    alias = {n: n for n in names}  # tensor -> graph input it carries
    for n in model.graph.node:
        if n.op_type in ("Cast", "Identity") and n.input and n.input[0] in alias:
            alias[n.output[0]] = alias[n.input[0]]
    out: dict[str, tuple[int, int]] = {}
    for n in model.graph.node:
        if n.op_type != "Gather" or len(n.input) < 2 or n.input[1] not in alias or n.input[0] not in tables:
            continue
        axis = next((int(a.i) for a in n.attribute if a.name == "axis"), 0)
        dims = tables[n.input[0]]
        if dims and -len(dims) <= axis < len(dims):
            src = alias[n.input[1]]
            rows = int(dims[axis])
            out[src] = (0, min(rows, out.get(src, (0, rows))[1]))
    return out


def read_graph(path: Path | str) -> Graph:
    """Load the graph (not its weights), check it, and describe its inputs and outputs.

    Raises :class:`OnnxModelError` naming the file: missing, empty, unparsable, failing onnx.checker.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise OnnxModelError(f"ONNX file {p} does not exist; fix the path")
    if p.stat().st_size == 0:
        raise OnnxModelError(f"ONNX file {p} is empty (an interrupted write?); export it again")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as exc:
        raise OnnxModelError(
            f"ONNX file {p} cannot be parsed ({type(exc).__name__}: {str(exc)[:200]}); it is truncated "
            "or not an ONNX model"
        ) from exc
    external = external_files(model, p.parent)
    missing = [str(f) for f in external if not f.is_file()]
    if missing:
        raise OnnxModelError(
            f"ONNX file {p} keeps its weights in external data files that are missing: {', '.join(missing)}; "
            "keep them beside the .onnx file"
        )
    try:
        # The path form checks models of any size (external data included) without loading them.
        onnx.checker.check_model(str(p))
    except Exception as exc:
        raise OnnxModelError(f"ONNX file {p} fails onnx.checker: {str(exc)[:600]}") from exc
    if not model.graph.node:
        raise OnnxModelError(f"ONNX file {p} has an empty graph")
    inits = {i.name for i in model.graph.initializer}
    inputs = _tensors([i for i in model.graph.input if i.name not in inits])
    if not inputs:
        raise OnnxModelError(f"ONNX file {p} has no inputs to feed")
    outputs = _tensors(model.graph.output)
    return Graph(
        p,
        inputs,
        outputs,
        external,
        _gather_ranges(model, {i.name for i in inputs}),
        output_kinds(model, outputs),
    )


def content_sha256(graph: Graph) -> str:
    """SHA-256 over the graph file and its external data files: the model's identity in the cache."""
    if not graph.external:
        return sha256_file(graph.path)
    h = hashlib.sha256(sha256_file(graph.path).encode())
    for f in graph.external:
        h.update(f.name.encode() + b"\0" + sha256_file(f).encode())
    return h.hexdigest()


def _no_module() -> Any:
    raise RuntimeError("this model is an ONNX file: it has no PyTorch module")


def spec_for_onnx(
    name: str,
    path: Path | str,
    *,
    shapes: Shapes | None = None,
    task: str = "generic",
    num_classes: int | None = None,
    description: str = "",
    tags: frozenset[str] = frozenset(),
    graph: Graph | None = None,
) -> ModelSpec:
    """A ModelSpec for an ONNX file (raises OnnxModelError / ShapeError with the reason)."""
    graph = graph or read_graph(path)
    specs, facts = resolve(graph, shapes or Shapes.none())
    return ModelSpec(
        name,
        task,
        _no_module,
        specs[0],
        num_classes,
        family="onnx",
        tags=frozenset({"user", "onnx", *tags}),
        description=description or f"ONNX file {graph.path}",
        extra_inputs=tuple(specs[1:]),
        onnx_path=str(graph.path),
        output_names=tuple(t.name for t in graph.outputs),
        output_kinds=graph.output_kinds,
        user=True,
        **facts,
    )


def prepared(
    cache: ArtifactCache, spec: ModelSpec, graph: Graph, sha: str, static_batch: int | None
) -> OnnxModel:
    """The user's graph (read and hashed once by the caller) as an OnnxModel: the file itself (dynamic
    batch), or a cached copy whose batch axis is fixed at ``static_batch``, keyed by the file's content."""
    model = onnx.load(str(graph.path), load_external_data=False)
    facts = graph_facts(model)
    if static_batch is None or spec.fixed_batch is not None:
        return OnnxModel(
            path=graph.path,
            sha256=sha,
            input_name=graph.inputs[0].name,
            output_names=tuple(t.name for t in graph.outputs),
            node_count=facts["node_count"],
            param_count=facts["param_count"],
            file_size=graph.path.stat().st_size + sum(f.stat().st_size for f in graph.external),
            opset=_opset(model),
            exporter="user-file",
            built=False,
            input_names=tuple(t.name for t in graph.inputs),
        )
    key: dict[str, Any] = {"user_onnx": sha, "static_batch": static_batch, "onnx": onnx.__version__}
    if not spec.batch_first:
        key["batch_axes"] = [i.batch_axis for i in spec.inputs]

    def build(tmp: Path) -> dict[str, Any]:
        from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed

        m = onnx.load(str(graph.path))  # weights included: the copy is self-contained
        for t, inp in zip(graph.inputs, spec.inputs, strict=True):
            if inp.batch_axis is None:
                continue
            sym = t.dims[inp.batch_axis]
            if isinstance(sym, str):
                make_dim_param_fixed(m.graph, sym, static_batch)
            elif sym is None:  # an unnamed batch dim: set it on the input itself
                m.graph.input[[i.name for i in m.graph.input].index(t.name)].type.tensor_type.shape.dim[
                    inp.batch_axis
                ].dim_value = static_batch
        fix_output_shapes(m)
        onnx.save_model(m, str(tmp))
        onnx.checker.check_model(str(tmp))
        return {"exporter": f"user-file(batch fixed at {static_batch})", **graph_facts(m)}

    art = cache.get_or_build("onnx-user-static", key, ".onnx", build)
    return onnx_model_from_artifact(art, _opset(model))


def _opset(model: onnx.ModelProto) -> int:
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
