"""A model's inputs: names, per-sample shapes, dtypes, dynamic axes and how synthetic values are drawn.

Shapes are written as trtexec writes them (``input:1x3x224x224``, several joined by commas).  Samples
are held batch first whatever the graph says; an input whose graph puts the batch elsewhere (a
recurrent state ``[layers, N, hidden]``) or has none (a scalar such as a sample rate) says so in
``batch_axis``, and :meth:`InputSpec.to_graph` lays a batch out as the graph takes it.  Zoo models
declare one :class:`InputSpec`; a user's ONNX file gets one per graph input
(:mod:`pytest_trt.models.onnx_shapes`), a user's module one per ``forward`` argument.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

Shape = tuple[int, ...]
Triplet = tuple[int, int, int]  # min, opt, max

FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")
INT_DTYPES = ("int64", "int32", "int8", "uint8", "bool")


class ShapeSyntaxError(ValueError):
    """A ``--trt-shapes`` value is malformed; the message quotes it and shows the expected form."""


@dataclass(frozen=True)
class InputSpec:
    """Per-sample input (batch excluded). ``hw_range`` makes height/width dynamic (min, opt, max)."""

    shape: Shape
    name: str = "input"
    dtype: str = "float32"
    hw_range: Triplet | None = None
    hw_multiple: int = 1  # H and W must be multiples of this (U-Net pooling depth)
    size_axes: tuple[int, ...] = (1, 2)  # sample axes the resolution parameter sets: (H, W), or (seq,)
    size_unit: str = "px"  # how the resolution appears in ids: 512px, 128tok
    vocab: int | None = None  # integer token inputs: ids drawn from [1000, vocab)
    value_range: tuple[int, int] | None = None  # other integer inputs: values drawn from [lo, hi)
    # Dynamic sample axes of a user's graph with their own min/opt/max (``--trt-min-shapes`` ...).
    ranges: tuple[tuple[int, Triplet], ...] = ()
    # Where the graph takes the batch: an axis of the full shape, or None (fed once, shared by the batch).
    batch_axis: int | None = 0
    fill: float | None = None  # every sample holds this value (``--trt-input-value sr:16000``)

    def with_hw(self, hw: int | None) -> Shape:
        if hw is None or not all(a < len(self.shape) for a in self.size_axes):
            return self.shape
        return tuple(hw if i in self.size_axes else d for i, d in enumerate(self.shape))

    @property
    def default_size(self) -> int:
        return self.shape[self.size_axes[0]]

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    def full_shape(self, batch: int, sample: Shape | None = None) -> Shape:
        """The graph's shape of a batch: the batch inserted at ``batch_axis`` (or not at all)."""
        s = list(self.shape if sample is None else sample)
        if self.batch_axis is not None:
            s.insert(self.batch_axis, batch)
        return tuple(s)

    def to_graph(self, a: np.ndarray) -> np.ndarray:
        """A batch held batch first, laid out as the graph takes it (an unbatched input: its one value)."""
        if self.batch_axis is None:
            return a[0, ...]  # a 0-d array, not a numpy scalar: runtimes take arrays
        return a if self.batch_axis == 0 else np.moveaxis(a, 0, self.batch_axis)

    def triplet(
        self, batches: Triplet, hw: int | None = None, hw_range: Triplet | None = None
    ) -> tuple[Shape, Shape, Shape]:
        """The min/opt/max full shapes of a build profile for this input, as the graph takes them."""
        own = dict(self.ranges)
        shapes = []
        for k in range(3):
            s: list[int] = []
            for axis, d in enumerate(self.shape):
                if axis in own:
                    s.append(own[axis][k])
                elif axis in self.size_axes and self.hw_range is not None and hw_range is not None:
                    s.append(hw_range[k])
                elif axis in self.size_axes and self.hw_range is not None and hw is not None:
                    s.append(hw)
                else:
                    s.append(d)
            shapes.append(self.full_shape(batches[k], tuple(s)))
        return shapes[0], shapes[1], shapes[2]

    def draw(self, n: int, rng: np.random.Generator, shape: Shape | None = None) -> np.ndarray:
        """``n`` synthetic samples: standard normal for real-valued inputs (the scale of normalised
        data), token ids framed as a tokenizer would for text, else integers in ``value_range``."""
        shape = self.shape if shape is None else shape
        if self.fill is not None:
            return np.full((n, *shape), self.fill, dtype=self.dtype)
        if self.batch_axis is None and n > 1:  # one value for the whole batch: every sample holds it
            return np.repeat(self.draw(1, rng, shape), n, axis=0)
        if self.vocab:
            ids = rng.integers(1000, self.vocab, (n, *shape), dtype=np.int64)
            ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
            return ids.astype(self.dtype, copy=False)
        if self.dtype == "bool":
            return rng.integers(0, 2, (n, *shape)).astype(bool)
        if not self.is_float:
            lo, hi = self.value_range or (0, 2)
            return rng.integers(lo, hi, (n, *shape)).astype(self.dtype)
        x = rng.standard_normal((n, *shape), dtype=np.float32)
        return x if self.dtype in ("float32", "bfloat16") else x.astype(self.dtype)


_DIMS = re.compile(r"^\d+(x\d+)*$")


def parse_shape(text: str, what: str = "--trt-shapes") -> Shape:
    """``1x3x224x224`` -> (1, 3, 224, 224); every dimension a positive integer."""
    t = text.strip().lower()
    if not _DIMS.match(t) or any(int(d) <= 0 for d in t.split("x")):
        raise ShapeSyntaxError(
            f"{what}: {text!r} is not a shape; write positive dimensions joined by 'x', e.g. 1x3x224x224"
        )
    return tuple(int(d) for d in t.split("x"))


def parse_shapes(values: list[str] | tuple[str, ...], what: str = "--trt-shapes") -> dict[str, Shape]:
    """trtexec's ``name:1x3x224x224[,name2:8x128]`` (the option may repeat) -> shapes by input name.

    A name may itself contain ':' (some exporters write ``input:0``): the shape is after the last one.
    """
    out: dict[str, Shape] = {}
    for value in values:
        for item in _split_items(value):
            name, sep, dims = item.rpartition(":")
            name = name.strip().strip("'\"")
            if not sep or not name:
                raise ShapeSyntaxError(
                    f"{what}: {item!r} needs an input name, as trtexec writes it: input:1x3x224x224"
                )
            if name in out:
                raise ShapeSyntaxError(f"{what}: input {name!r} is given twice")
            out[name] = parse_shape(dims, f"{what} {name}")
    return out


def _split_items(value: str) -> list[str]:
    # Commas separate inputs; a comma inside quotes belongs to a name.
    items, cur, quote = [], "", ""
    for ch in value:
        if ch in "'\"":
            quote = "" if quote == ch else (quote or ch)
        if ch == "," and not quote:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    return [i.strip() for i in items if i.strip()]


def format_shape(shape: Shape | list[int | str]) -> str:
    return "x".join(str(d) for d in shape)
