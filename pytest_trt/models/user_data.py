"""The user's own data: inputs, calibration inputs and trusted reference outputs from ``.npz`` files.

An ``.npz`` holds one array per model input (or output), keyed by its name, samples on axis 0
(``numpy.savez("inputs.npz", input_ids=ids, attention_mask=mask)``).  Every mismatch -- a missing or
unknown name, a wrong rank, a dimension the model fixes, a dtype of another kind, arrays of different
lengths -- is a :class:`UserDataError` that names the file and lists what the model expects.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pytest_trt.models.datasets import Samples
from pytest_trt.models.signature import InputSpec, Shape, format_shape


class UserDataError(ValueError):
    """An .npz file does not fit the model; the message names the file and what the model expects."""


def _kind(dtype: str) -> str:
    d = np.dtype(dtype)
    return "bool" if d.kind == "b" else ("float" if d.kind == "f" else "integer")


def _load(path: Path | str, what: str) -> dict[str, np.ndarray]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserDataError(f"{what} {p}: no such file; save one with numpy.savez(path, name=array, ...)")
    try:
        with np.load(p, allow_pickle=False) as z:  # arrays only: never unpickle objects
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise UserDataError(
            f"{what} {p}: not a readable .npz of plain arrays ({exc}); save it with numpy.savez"
        ) from exc


def _same_names(arrays: dict[str, np.ndarray], names: Sequence[str], where: str, expect: str) -> None:
    """The file holds exactly the model's names: else one error saying what is missing and what is extra."""
    missing = [n for n in names if n not in arrays]
    unknown = [n for n in arrays if n not in names]
    parts = ([f"missing {', '.join(map(repr, missing))}"] if missing else []) + (
        [f"unknown {', '.join(map(repr, unknown))}"] if unknown else []
    )
    if parts:
        raise UserDataError(f"{where}: {' and '.join(parts)}; {expect}")


def array_names(path: Path | str | None) -> frozenset[str]:
    """The array names an .npz holds (nothing loaded), or none when there is no file or it is unreadable
    (loading it later reports that)."""
    if not path:
        return frozenset()
    try:
        with np.load(Path(path).expanduser(), allow_pickle=False) as f:
            return frozenset(f.files)
    except Exception:
        return frozenset()


def expected_inputs(inputs: Sequence[InputSpec]) -> str:
    """Each input as the graph takes it: ``N`` where it holds the batch."""
    parts = []
    for i in inputs:
        dims: list[str] = [str(d) for d in i.shape]
        if i.batch_axis is not None:
            dims.insert(i.batch_axis, "N")
        parts.append(f"{i.name}: {i.dtype}[{', '.join(dims)}]")
    return "; ".join(parts)


def load_inputs(
    path: Path | str,
    inputs: Sequence[InputSpec],
    shapes: Sequence[Shape],
    what: str = "--trt-inputs",
    dynamic: Sequence[Sequence[int]] = (),
) -> Samples:
    """Arrays by input name -> Samples in the model's input order, cast within their dtype kind.

    ``shapes`` are the per-sample shapes the model takes here; axes listed in ``dynamic[i]`` (sample
    axes the engine's profile leaves open) may differ from them.
    """
    arrays = _load(path, what)
    names = [i.name for i in inputs]
    expect = f"the model expects {expected_inputs(inputs)}"
    _same_names(arrays, names, f"{what} {path}", expect)
    out = []
    shared: set[int] = set()  # inputs without a batch axis: one value, given once
    for k, (spec, shape) in enumerate(zip(inputs, shapes, strict=True)):
        a = arrays[spec.name]
        free = set(dynamic[k]) if k < len(dynamic) else set()
        if spec.batch_axis is None and a.ndim == len(shape):
            shared.add(k)
            a = a[None]
        elif spec.batch_axis and a.ndim == len(shape) + 1:  # stored as the graph takes it
            a = np.moveaxis(a, spec.batch_axis, 0)
        if a.ndim != len(shape) + 1:
            raise UserDataError(
                f"{what} {path}: {spec.name!r} has shape {format_shape(a.shape)}, rank {a.ndim}; the model "
                f"takes rank {len(shape) + 1} (N x {format_shape(shape)}); {expect}"
            )
        bad = [ax for ax, d in enumerate(shape) if ax not in free and a.shape[ax + 1] != d]
        if bad:
            raise UserDataError(
                f"{what} {path}: {spec.name!r} has shape {format_shape(a.shape)}; the model takes "
                f"N x {format_shape(shape)} (axis {bad[0] + 1} differs); {expect}"
            )
        if _kind(str(a.dtype)) != _kind(spec.dtype):
            raise UserDataError(
                f"{what} {path}: {spec.name!r} holds {a.dtype} values; the model takes {spec.dtype} "
                f"({_kind(spec.dtype)}); {expect}"
            )
        out.append(np.ascontiguousarray(a.astype(spec.dtype, copy=False)))
    lengths = {len(a) for k, a in enumerate(out) if k not in shared}
    for k in shared:
        out[k] = np.ascontiguousarray(np.repeat(out[k], max(lengths, default=1), axis=0))
    if len(lengths) > 1:
        raise UserDataError(
            f"{what} {path}: the arrays hold different numbers of samples "
            f"({', '.join(f'{n}={len(a)}' for n, a in zip(names, out, strict=True))})"
        )
    if not lengths or lengths == {0}:
        raise UserDataError(f"{what} {path}: no samples (axis 0 is empty)")
    return Samples(out[0], None, f"npz:{Path(path).name}(n={len(out[0])})", tuple(out[1:]))


def load_outputs(
    path: Path | str,
    names: Sequence[str],
    computed: Sequence[np.ndarray],
    what: str = "--trt-reference-outputs",
) -> list[np.ndarray]:
    """Trusted outputs by output name; each must have the shape the model's fp32 run produced."""
    arrays = _load(path, what)
    expect = "the model's outputs are " + "; ".join(
        f"{n}: [{', '.join(map(str, c.shape))}]" for n, c in zip(names, computed, strict=True)
    )
    _same_names(arrays, names, f"{what} {path}", expect)
    out = []
    for n, c in zip(names, computed, strict=True):
        a = arrays[n]
        if a.shape != c.shape:
            raise UserDataError(
                f"{what} {path}: {n!r} has shape {format_shape(a.shape)}, the model's output on these inputs "
                f"is {format_shape(c.shape)} (one row per input sample, in order); {expect}"
            )
        out.append(a.astype(np.float32) if a.dtype.kind == "f" else a)
    return out
