"""Where an ONNX graph leaves fp16's range: the constants, and the activations of one sample, beyond
+-65504.  The usual cause of an fp16 engine whose outputs saturate or turn to NaN (e.g. a BatchNorm
variance of 1e8 folded into a Constant), and what a failing fp16 case reports as the thing to look at.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

FP16_MAX = float(np.finfo(np.float16).max)  # 65504
MAX_LISTED = 5  # a report names the worst few, not every tensor of a broken graph


@dataclass(frozen=True)
class OutOfRange:
    """A tensor with a value fp16 cannot hold: a constant, or an activation of the sample scanned."""

    tensor: str
    kind: str  # "constant" or "activation"
    node: str  # a constant: the node that reads it; an activation: the node that makes it
    op: str
    max_abs: float


def _node_names(model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    producer = {o: n for n in model.graph.node for o in n.output}
    consumer: dict[str, Any] = {}
    for n in model.graph.node:
        for i in n.input:
            consumer.setdefault(i, n)
    return producer, consumer


def constants(model: Any, limit: float = FP16_MAX) -> list[OutOfRange]:
    """Initializers and Constant nodes of floating type with |value| > limit, largest first, each
    named with the node that reads it (the layer to keep in fp32)."""
    from onnx import numpy_helper

    _, consumer = _node_names(model)
    found = []
    tensors = [(t.name, t) for t in model.graph.initializer]
    tensors += [
        (n.output[0], a.t)
        for n in model.graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value"
    ]
    for name, tensor in tensors:
        values = numpy_helper.to_array(tensor)
        if values.dtype.kind != "f" or not values.size:
            continue
        big = float(np.max(np.abs(values[np.isfinite(values)]), initial=0.0))
        if big > limit:
            reader = consumer.get(name)
            where, op = (reader.name, reader.op_type) if reader is not None else ("", "")
            found.append(OutOfRange(name, "constant", where, op, big))
    return sorted(found, key=lambda r: -r.max_abs)


def activations(path: Path, feeds: dict[str, np.ndarray], limit: float = FP16_MAX) -> list[OutOfRange]:
    """Every intermediate float tensor of one run of the fp32 graph (onnxruntime, CPU, no fusion)
    with |value| > limit, largest first."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    producer, _ = _node_names(model)
    names = [o for n in model.graph.node if n.op_type != "Constant" for o in n.output if o]
    del model.graph.output[:]
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    found = []
    for name, value in zip(names, sess.run(names, feeds), strict=True):
        a = np.asarray(value)
        if a.dtype.kind != "f" or not a.size:
            continue
        finite = a[np.isfinite(a)]
        big = float(np.max(np.abs(finite), initial=0.0))
        if big > limit:
            node = producer[name]
            found.append(OutOfRange(name, "activation", node.name, node.op_type, big))
    return sorted(found, key=lambda r: -r.max_abs)


def scan(path: Path, feeds: dict[str, np.ndarray] | None) -> dict[str, Any]:
    """The record's ``fp16_range`` section: what leaves fp16's range, the worst few of each kind."""
    import onnx

    t0 = time.perf_counter()
    out: dict[str, Any] = {"limit": FP16_MAX}
    consts = constants(onnx.load(str(path)))
    out["constants"] = [asdict(r) for r in consts[:MAX_LISTED]]
    out["constants_count"] = len(consts)
    if feeds is not None:
        try:
            acts = activations(path, feeds)
            out["activations"] = [asdict(r) for r in acts[:MAX_LISTED]]
            out["activations_count"] = len(acts)
        except Exception as exc:  # a graph onnxruntime cannot run with every tensor exposed
            out["activations_error"] = f"{type(exc).__name__}: {exc}"[:300]
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def hint(section: dict[str, Any]) -> list[str]:
    """The failure message's lines: what exceeds fp16, and what to do about it."""
    lines = []
    for kind in ("constants", "activations"):
        rows = section.get(kind) or []
        if rows:
            worst = ", ".join(
                f"{r['tensor']} = {r['max_abs']:.3g} ({_verb(kind)} {r['op']} {r['node']})" for r in rows
            )
            lines.append(f"  {section[kind + '_count']} {kind} beyond fp16's range (+-65504): {worst}")
    if lines:
        lines.append("  keep the layers that make or read them in fp32, or rescale them in the model")
    return lines


def _verb(kind: str) -> str:
    return "read by" if kind == "constants" else "made by"
