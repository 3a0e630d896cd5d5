"""A user's ONNX file as a model: its inputs read from the graph, its shapes resolved, its content hashed.

Input names, dtypes and ranks come from the graph.  Axis 0 is the batch: symbolic there means the
engine gets a dynamic batch profile, a number there fixes the batch.  Every other symbolic axis needs
a size, given as trtexec gives it (``--trt-shapes x:1x3x224x224``, or ``--trt-min-shapes`` /
``--trt-opt-shapes`` / ``--trt-max-shapes`` for a range).  Integer inputs used as ``Gather`` indices
into a table (token ids, type ids) are drawn below the table's size; other integer inputs from
[0, 2) when named like a mask, else [0, 16).

The file is identified by the SHA-256 of its bytes *and* of its external data files (weights stored
beside the graph, as models over 2 GB are), so every derived artifact (static-batch variant, fp16 or
int8 graph, engine) is cached by content: moving the file reuses them, changing its weights does not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
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
from pytest_trt.models.signature import InputSpec, Shape, Triplet, format_shape
from pytest_trt.models.zoo import ModelSpec

Dim = int | str | None  # a number, a symbol, or unknown


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


class ShapeError(ValueError):
    """Shapes given for a graph do not fit it; the message lists what the graph expects."""


@dataclass(frozen=True)
class Shapes:
    """What the user said about the inputs: shapes (trtexec's --shapes / --minShapes / --optShapes /
    --maxShapes), where a tensor holds the batch (``--trt-batch-axis``, inputs and outputs by name),
    fixed input values (``--trt-input-value``) and which inputs a ``--trt-inputs`` file supplies."""

    opt: Mapping[str, Shape]
    lo: Mapping[str, Shape]
    hi: Mapping[str, Shape]
    batch_axes: Mapping[str, int | None] = field(default_factory=dict)
    values: Mapping[str, float] = field(default_factory=dict)
    supplied: frozenset[str] = frozenset()

    @staticmethod
    def none() -> Shapes:
        return Shapes({}, {}, {})

    def named(self) -> set[str]:
        """Every tensor name the user referred to (each must exist in some graph)."""
        return {*self.opt, *self.lo, *self.hi, *self.batch_axes, *self.values}

    def only(self, names: set[str]) -> Shapes:
        """What applies to a graph with these tensor names."""

        def keep(m: Mapping[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in m.items() if k in names}

        return Shapes(
            keep(self.opt), keep(self.lo), keep(self.hi), keep(self.batch_axes), keep(self.values),
            self.supplied,
        )  # fmt: skip


def _int_range(t: GraphTensor, graph: Graph) -> tuple[int, int] | None:
    if t.dtype.startswith("float") or t.dtype == "bool":
        return None
    if t.name in graph.int_ranges:
        return graph.int_ranges[t.name]
    return (0, 2) if "mask" in t.name.lower() else (0, 16)


def batch_axes(graph: Graph, given: Mapping[str, int | None]) -> tuple[list[int | None], list[int]]:
    """Where each input and output holds the batch: as given, else where the batch's symbol (axis 0 of
    the first batched input, e.g. ``batch``) appears, else axis 0; a scalar input has none."""
    tensors = (*graph.inputs, *graph.outputs)
    for name, axis in given.items():
        t = next((t for t in tensors if t.name == name), None)
        if t is None:
            continue  # named for another file; the caller reports names no file has
        if axis is not None and not 0 <= axis < max(len(t.dims), 1):
            raise ShapeError(
                f"--trt-batch-axis {name}:{axis}: {t.describe()} has no axis {axis} (rank {len(t.dims)})"
            )
    first = next((t for t in graph.inputs if t.dims and given.get(t.name, 0) is not None), None)
    sym: Dim = None
    if first is not None:
        d = first.dims[given.get(first.name, 0) or 0]
        sym = d if isinstance(d, str) else None

    def axis_of(t: GraphTensor, default: int | None) -> int | None:
        if t.name in given:
            return given[t.name]
        if not t.dims:
            return None
        if sym is not None and sym in t.dims:
            return t.dims.index(sym)
        return default

    ins = [axis_of(t, 0) for t in graph.inputs]
    outs = [axis_of(t, 0) or 0 for t in graph.outputs]
    return ins, outs


def _check_batch_axes(graph: Graph, axes: list[int | None]) -> None:
    """A fixed size on one input's batch axis while another's is dynamic is a misread layout: say where
    the batch is (a recurrent state's axis 0 is often its layer count)."""
    dynamic = [
        t for t, a in zip(graph.inputs, axes, strict=True) if a is not None and not isinstance(t.dims[a], int)
    ]
    if not dynamic:
        return
    for t, a in zip(graph.inputs, axes, strict=True):
        if a is not None and isinstance(t.dims[a], int):
            other = next((k for k, d in enumerate(t.dims) if not isinstance(d, int)), None)
            where = f"--trt-batch-axis {t.name}:{other}" if other is not None else ""
            raise ShapeError(
                f"input {t.name!r} ({t.describe()}) fixes axis {a} at {t.dims[a]} while {dynamic[0].name!r} "
                f"has a dynamic batch; say where {t.name!r} holds the batch"
                + (f" ({where})" if where else "")
                + f", or that it has none (--trt-batch-axis {t.name}:none)"
            )


def resolve(graph: Graph, shapes: Shapes) -> tuple[list[InputSpec], dict[str, Any]]:
    """InputSpecs for every graph input, and the batch facts (fixed_batch, batch_range, batches,
    output_batch_axes)."""
    names = [t.name for t in graph.inputs]
    expected = f"the graph's inputs are {graph.describe_inputs()}"
    for by_name in (shapes.opt, shapes.lo, shapes.hi, shapes.values):
        unknown = [n for n in by_name if n not in names]
        if unknown:
            raise ShapeError(
                f"shapes or values given for {', '.join(map(repr, unknown))}, which the graph lacks; {expected}"
            )
    in_axes, out_axes = batch_axes(graph, shapes.batch_axes)
    _check_batch_axes(graph, in_axes)
    specs: list[InputSpec] = []
    fixed: set[int] = set()
    batch_opt: set[int] = set()
    batch_range: Triplet | None = None
    for t, b in zip(graph.inputs, in_axes, strict=True):
        if t.dtype not in ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool"):
            raise ShapeError(f"input {t.name!r} has dtype {t.dtype}, which numpy inputs cannot carry")
        fill = shapes.values.get(t.name)
        if not t.dims and fill is None and t.name not in shapes.supplied and not t.dtype.startswith("float"):
            raise ShapeError(
                f"input {t.name!r} is a scalar {t.dtype} (often a mode, such as a sample rate); give its value: "
                f"--trt-input-value {t.name}:VALUE, or an array {t.name!r} in --trt-inputs"
            )
        opt, lo, hi = shapes.opt.get(t.name), shapes.lo.get(t.name), shapes.hi.get(t.name)
        if (lo is None) != (hi is None):
            raise ShapeError(f"input {t.name!r}: give both a min and a max shape, or neither")
        for s in (opt, lo, hi):
            if s is not None and len(s) != len(t.dims):
                raise ShapeError(
                    f"input {t.name!r} has rank {len(t.dims)} ({t.describe()}); the shape "
                    f"{format_shape(s)} has rank {len(s)}"
                )
        if lo is not None and hi is not None and opt is None:
            opt = tuple(max(a, b) for a, b in zip(lo, hi, strict=True))
        dims, ranges = [], []
        for axis, d in enumerate(t.dims):
            given = None if opt is None else opt[axis]
            if isinstance(d, int) and given is not None and given != d:
                raise ShapeError(
                    f"input {t.name!r} axis {axis} is fixed at {d} in the graph ({t.describe()}); "
                    f"the shape {format_shape(opt or ())} says {given}"
                )
            if axis == b:
                if isinstance(d, int):
                    fixed.add(d)
                elif given is not None:
                    batch_opt.add(given)
                if lo is not None and hi is not None and not isinstance(d, int):
                    assert opt is not None
                    batch_range = (lo[axis], opt[axis], hi[axis])
                continue
            if isinstance(d, int):
                dims.append(d)
                continue
            if given is None:
                sym = f" ({d!r})" if d else ""
                # the hint keeps every axis the graph fixes and writes the batch where the graph has it
                example = format_shape(
                    [x if isinstance(x, int) else (1 if k == b else "N") for k, x in enumerate(t.dims)]
                )
                raise ShapeError(
                    f"input {t.name!r} axis {axis}{sym} is dynamic; give its size as trtexec does: "
                    f"--trt-shapes {t.name}:{example} (N: your size); {expected}"
                )
            dims.append(given)
            sample_axis = axis - (1 if b is not None and axis > b else 0)
            if lo is not None and hi is not None and lo[axis] != hi[axis]:
                if not lo[axis] <= given <= hi[axis]:
                    raise ShapeError(
                        f"input {t.name!r} axis {axis}: opt {given} outside min..max {lo[axis]}..{hi[axis]}"
                    )
                ranges.append((sample_axis, (lo[axis], given, hi[axis])))
        specs.append(
            InputSpec(
                tuple(dims),
                name=t.name,
                dtype=t.dtype,
                size_axes=(),
                value_range=_int_range(t, graph),
                ranges=tuple(ranges),
                batch_axis=b,
                fill=fill,
            )
        )
    if len(fixed) > 1:
        raise ShapeError(
            f"the graph's inputs disagree on the batch size ({sorted(fixed)}); {expected}; if one of them holds "
            "the batch on another axis or has none, say so: --trt-batch-axis NAME:AXIS or NAME:none"
        )
    if len(batch_opt) > 1:
        raise ShapeError(f"the shapes give different batch sizes ({sorted(batch_opt)}) for one graph")
    facts: dict[str, Any] = {
        "fixed_batch": next(iter(fixed), None),
        "batch_range": batch_range,
        "output_batch_axes": tuple(out_axes),
    }
    if batch_opt:
        facts["batches"] = tuple(batch_opt)
    if batch_range is not None and not batch_range[0] <= batch_range[1] <= batch_range[2]:
        raise ShapeError(f"batch min/opt/max {batch_range} is not ordered")
    return specs, facts


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
