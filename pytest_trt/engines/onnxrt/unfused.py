"""The ONNX graph's own arithmetic: onnxruntime on CPU with every graph optimization off, batches fed
as the graph takes them and outputs returned batch first.  What references are computed with, and
what the int8 sensitivity pass compares each layer against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pytest_trt.models.registry import ModelSpec


def graph_outputs(
    path: Path,
    x: np.ndarray | tuple[np.ndarray, ...],
    chunk: int = 16,
    layout: ModelSpec | None = None,
) -> list[np.ndarray]:
    """ONNX Runtime CPU with every graph optimization off: the ONNX graph's own arithmetic.

    Inputs and outputs are batch first; ``layout`` (the model) says where the graph itself holds the
    batch of each tensor, when not on axis 0."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    xs = (x,) if isinstance(x, np.ndarray) else x
    axes = [i.batch_axis for i in layout.inputs] if layout is not None else [0] * len(names)
    batched = next((k for k, a in enumerate(axes) if a is not None), 0)
    dims = sess.get_inputs()[batched].shape
    fixed = dims[axes[batched] or 0] if dims else None
    step = fixed if isinstance(fixed, int) and fixed > 0 else chunk
    outs = []
    for i in range(0, len(xs[0]), step):
        n = min(step, len(xs[0]) - i)
        chunk_in = []
        for a in xs:
            ai = a[i : i + step]
            if n < step and isinstance(fixed, int):  # a static-batch graph: pad, then drop the padding
                ai = np.concatenate([ai, np.repeat(ai[-1:], step - n, axis=0)])
            chunk_in.append(ai)
        graph_in = layout.to_graph(chunk_in) if layout is not None else tuple(chunk_in)
        results: list[Any] = [np.asarray(o) for o in sess.run(None, dict(zip(names, graph_in, strict=True)))]
        if layout is not None:
            results = layout.from_graph(results)
        outs.append([_widen(o[:n]) for o in results])
    return [np.concatenate([c[k] for c in outs]) for k in range(len(outs[0]))]


def _widen(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) if a.dtype.kind == "f" else a
