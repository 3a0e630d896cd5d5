"""Shapes of a user's ONNX inputs: what the user said (trtexec's shapes, batch axes, input values)
resolved against the graph into :class:`InputSpec` objects and the batch facts of the model.

The batch is axis 0 of the first input; every other tensor holds it where the same symbol appears
(a recurrent state ``[2, batch, 128]`` on axis 1), else on axis 0, unless ``--trt-batch-axis`` says
otherwise; a scalar input has none.  Every other symbolic axis needs a size, as trtexec asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_trt.models.signature import InputSpec, Shape, Triplet, format_shape

if TYPE_CHECKING:
    from pytest_trt.models.onnx_models import Graph, GraphTensor

Dim = int | str | None  # a number, a symbol, or unknown


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
