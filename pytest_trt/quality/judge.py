"""Judging one configuration's outputs: metrics against the fp32 baseline and the same-recipe reference,
then the gates, for every output of the model (the first with the model's task, the others as generic
tensors).  On arrays already computed; the fixture decides what to run.  Large outputs of a CUDA session
are measured on its device (:mod:`pytest_trt.quality.device_metrics`), the rest in numpy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_trt.quality import device_metrics, gates, metrics
from pytest_trt.quality.reference import Reference


@dataclass
class Verdict:
    quality: dict[str, Any]
    results: list[gates.GateResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


def judge_output(
    task: str,
    base: np.ndarray,
    out: np.ndarray,
    ref: np.ndarray | None,
    ref_info: Mapping[str, Any],
    *,
    gate_class: str,
    gate_list: Sequence[gates.Gate],
    labels: np.ndarray | None,
    trained: bool,
    exact: bool,
    output: str | None = None,
    sections: Mapping[str, Any] | None = None,
    kind: str = "values",
    device: str | None = None,
) -> Verdict:
    """Metrics and gate results of one output (``sections``: more metrics its gates may name; ``kind``:
    what the output holds, e.g. ``probability`` for a Sigmoid/Softmax output; ``device``: the session's
    torch device, where a large output's metrics are computed)."""
    on_device = device is not None and device_metrics.wanted(device, base)
    if on_device:
        q = device_metrics.quality(task, base, out, labels, kind=kind, device=str(device))
    else:
        q = metrics.quality(task, base, out, labels, kind=kind)
    q.update(sections or {})
    q["gate_class"] = gate_class
    q["reference"] = dict(ref_info)
    if ref is not None:
        floor = gates.FLOORS.get(gate_class, gates.FLOORS["fp32"])
        args: dict[str, Any] = {
            "floor": floor,
            "task": task,
            "trained": trained,
            "exact": exact,
            "kind": kind,
        }
        q["reference"].update(
            device_metrics.against_reference(base, out, ref, device=str(device), **args)
            if on_device
            else metrics.against_reference(base, out, ref, **args)
        )
    q["reference"]["rule"] = [str(g) for g in gate_list if g.rule]
    results = gates.evaluate(gate_list, q, trained=trained, base=base, out=out, reference=ref is not None)
    for r in results:
        r.output = output
    q["gates"] = [r.as_dict() for r in results]
    q["passed"] = all(r.passed for r in results)
    return Verdict(q, results)


def judge(
    task: str,
    names: Sequence[str],
    base: Sequence[np.ndarray],
    out: Sequence[np.ndarray],
    ref: Reference,
    *,
    gate_class: str,
    gate_list: Sequence[gates.Gate],
    labels: np.ndarray | None,
    trained: bool,
    sections: Mapping[str, Any] | None = None,
    kinds: Sequence[str] = (),
    device: str | None = None,
) -> Verdict:
    """Every output judged; the first output's quality is the result's, the others are under ``outputs``.
    ``sections`` (e.g. ``sparsity``) join the first output's quality before its gates are checked."""
    if len(out) != len(base):
        raise ValueError(
            f"the engine returned {len(out)} outputs; the baseline has {len(base)} ({', '.join(names)})"
        )
    several = len(base) > 1
    verdicts = []
    for k, (b, o) in enumerate(zip(base, out, strict=True)):
        if o.shape != b.shape:
            raise ValueError(
                f"output {names[k]!r} has shape {o.shape} from the engine and {b.shape} from the baseline"
            )
        verdicts.append(
            judge_output(
                task if k == 0 else "generic",
                b,
                o,
                None if ref.outputs is None else ref.outputs[k],
                ref.as_dict(),
                gate_class=gate_class,
                gate_list=gate_list,
                labels=labels if k == 0 else None,
                trained=trained,
                exact=ref.exact,
                output=names[k] if several else None,
                sections=sections if k == 0 else None,
                kind=kinds[k] if k < len(kinds) else "values",
                device=device,
            )
        )
    q = verdicts[0].quality
    results = [r for v in verdicts for r in v.results]
    if several:
        q["output_names"] = list(names)
        q["outputs"] = {names[k]: v.quality for k, v in enumerate(verdicts) if k > 0}
        q["passed"] = all(r.passed for r in results)
    return Verdict(q, results)
