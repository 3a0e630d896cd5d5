"""Quality gates: the same-recipe reference rule and absolute thresholds, with readable failures.

A gate is ``METRIC OP VALUE`` where METRIC names a number in ``extra_info.quality``
(``closeness@0.1``, ``top1_agreement``, ``accuracy_top1``, ``seg_closeness``, ``ref_error_ratio``, ...),
OP is ``>=`` or ``<=``, and VALUE is a number or ``Rxbase`` (R times the baseline's own value of the
same metric, MLPerf-style: ``accuracy_top1>=0.99xbase``).

**The reference rule** (every weights, every task; see :mod:`pytest_trt.quality.reference`): with ``e`` the
engine's relative L2 error against strict fp32, ``r`` the same-recipe reference's, ``d`` the engine's
distance to that reference (all divided by ||fp32 output||) and ``s = max(r, floor[precision])``:

* ``ref_error_ratio = e / s <= 2``: the engine is about as close to fp32 as its recipe allows;
* ``ref_distance_ratio = d / s <= 2.5``: it agrees with the reference as well as two independent
  implementations of one precision can (independent rounding gives d ~ 1.4 r); when the reference
  runs the engine's own graph (int8 Q/DQ) it is *exact* and ``exact_ref_distance_ratio <= 0.5`` (two
  implementations of one Q/DQ graph, ONNX Runtime's fused integer kernels and its unfused arithmetic,
  were measured 0.08 apart on EfficientNet-Lite0 and 0.28 on a random-weight ResNet18);
* ``sample_identity >= 1``: every output is nearest to its own sample's reference (catches mix-ups);
* ``unexplained_flips <= 0`` (trained classifiers): no decisive top-1 changes against the reference.

**Absolute gates** (closeness, cosine, top-k agreement, accuracy relative to fp32, segmentation) apply
with trained weights or labelled data; with random weights they are recorded but not applied, because
such networks amplify honest rounding without bound -- unless no reference could be computed, in which
case they apply, so nothing passes unjudged.  Gates the user sets (``--trt-gate``, ini, marker) always
apply.  NaN/Inf in the output always fails.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_trt.quality import detection, metrics

_GATE = re.compile(r"^\s*([A-Za-z0-9_@.]+)\s*(>=|<=)\s*([0-9.eE+-]+)(xbase)?\s*$")


class GateSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Gate:
    metric: str
    op: str
    value: float
    relative: bool = False  # value is a factor of the baseline's own metric
    needs_trained: bool = False  # only meaningful with trained weights or labels
    user: bool = False  # set by the user (CLI, ini, marker): always applied
    rule: bool = False  # part of the same-recipe reference rule

    @staticmethod
    def parse(text: str) -> Gate:
        m = _GATE.match(text)
        if not m:
            raise GateSyntaxError(
                f"quality gate {text!r}: expected METRIC>=VALUE or METRIC<=VALUE (VALUE may be Rxbase), "
                "e.g. 'closeness@0.1>=99' or 'accuracy_top1>=0.99xbase'"
            )
        metric = m.group(1)
        return Gate(
            metric,
            m.group(2),
            float(m.group(3)),
            bool(m.group(4)),
            metric in TRAINED_ONLY,
            rule=metric in RULE,
        )

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}{'xbase' if self.relative else ''}"


# Label-level metrics: with random weights the logits are nearly tied, so argmax labels flip under any
# perturbation and these say nothing about the engine (classification and segmentation alike).
TRAINED_ONLY = {
    "top1_agreement",
    "top5_overlap",
    "accuracy_top1",
    "accuracy_top5",
    "miou",
    "seg_closeness",
    "mask_iou",
    "mask_dice",
    "pixel_agreement",
    # detection: with random weights the detections are near-ties, so mAP measures nothing
    *detection.MAP_METRICS,
}

# The reference rule's metrics (computed by metrics.against_reference) and their defaults.
RULE = {
    "ref_error_ratio",
    "ref_distance_ratio",
    "exact_ref_distance_ratio",
    "sample_identity",
    "unexplained_flips",
}
REFERENCE_RULE = (
    "ref_error_ratio<=2",
    "ref_distance_ratio<=2.5",
    "exact_ref_distance_ratio<=0.5",
    "sample_identity>=1",
    "unexplained_flips<=0",
)
# Relative L2 error every implementation of a precision may have however exact its reference: the
# scale s of the rule never drops below it (fp32 reorderings, one fp16/bf16 rounding, int8 rescaling).
FLOORS = {"fp32": 1e-3, "tf32": 5e-3, "fp16": 5e-3, "bf16": 3e-2, "int8": 2e-2}

# Detection (boxes and masks): mAP against labels relative to the fp32 model's own, MLPerf-style (int8
# keeps >= 99 %), and agreement mAP against the fp32 model's confident detections.
DETECTION_GATES: dict[str, tuple[str, ...]] = {
    "fp32": (
        "map50_95>=0.995xbase",
        "mask_map50_95>=0.995xbase",
        "agreement_map50_95>=0.95",
        "agreement_mask_map50_95>=0.95",
    ),
    "tf32": (
        "map50_95>=0.99xbase",
        "mask_map50_95>=0.99xbase",
        "agreement_map50_95>=0.9",
        "agreement_mask_map50_95>=0.9",
    ),
    "fp16": (
        "map50_95>=0.99xbase",
        "mask_map50_95>=0.99xbase",
        "agreement_map50_95>=0.9",
        "agreement_mask_map50_95>=0.9",
    ),
    "bf16": (
        "map50_95>=0.98xbase",
        "mask_map50_95>=0.98xbase",
        "agreement_map50_95>=0.8",
        "agreement_mask_map50_95>=0.8",
    ),
    "int8": (
        "map50_95>=0.99xbase",
        "mask_map50_95>=0.99xbase",
        "agreement_map50>=0.85",
        "agreement_mask_map50>=0.85",
    ),
}

# Absolute top-1 agreement floors allow for a near-tie or two among a few dozen samples; decisive
# flips are caught exactly by the rule's unexplained_flips.
DEFAULT_GATES: dict[str, tuple[str, ...]] = {
    "fp32": (
        "cosine_min>=0.99999",
        "closeness@0.01>=99",
        "top1_agreement>=0.99",
        "accuracy_top1>=0.999xbase",
        "seg_closeness>=99",
        *DETECTION_GATES["fp32"],
    ),
    # fp32 with TF32 math (the default on NVIDIA GPUs, in TensorRT and torch alike): 10-bit mantissa products.
    "tf32": (
        "cosine_min>=0.9999",
        "closeness@0.1>=99",
        "top1_agreement>=0.97",
        "accuracy_top1>=0.995xbase",
        "seg_closeness>=98",
        *DETECTION_GATES["tf32"],
    ),
    "fp16": (
        "cosine_min>=0.999",
        "closeness@0.1>=99",
        "top1_agreement>=0.95",
        "accuracy_top1>=0.99xbase",
        "seg_closeness>=97",
        *DETECTION_GATES["fp16"],
    ),
    "bf16": (
        "cosine_min>=0.99",
        "closeness@0.2>=95",
        "top1_agreement>=0.90",
        "accuracy_top1>=0.98xbase",
        "seg_closeness>=95",
        *DETECTION_GATES["bf16"],
    ),
    "int8": (
        "cosine_min>=0.98",
        "closeness@1>=95",
        "top1_agreement>=0.85",
        "accuracy_top1>=0.97xbase",
        "seg_closeness>=90",
        *DETECTION_GATES["int8"],
    ),
}


def parse_overrides(lines: Iterable[str]) -> dict[str, list[Gate]]:
    """``PRECISION:GATE`` lines (CLI/ini) -> gates per precision; ``*:`` applies to every precision."""
    out: dict[str, list[Gate]] = {}
    for line in lines:
        if not line.strip():
            continue
        prec, sep, expr = line.partition(":")
        if not sep:
            raise GateSyntaxError(
                f"--trt-gate {line!r}: expected PRECISION:GATE, e.g. 'int8:closeness@1>=90'"
            )
        gate = dataclasses.replace(Gate.parse(expr), user=True)
        from pytest_trt.quality import gate_names  # computes its metric list once, on first use

        try:
            gate_names.check(prec.strip(), gate.metric)
        except gate_names.UnknownGate as exc:
            raise GateSyntaxError(f"--trt-gate {line!r}: {exc}") from None
        out.setdefault(prec.strip(), []).append(gate)
    return out


def gate_class(precision: str, tf32: bool) -> str:
    """The gate set a result is judged by: fp32 computed with TF32 is judged as ``tf32``."""
    return "tf32" if precision == "fp32" and tf32 else precision


def gates_for(precision: str, overrides: Mapping[str, list[Gate]] | None = None) -> list[Gate]:
    """The rule and the absolute defaults for ``precision`` (or ``tf32``); an override of the same
    metric replaces the default."""
    defaults = (*REFERENCE_RULE, *DEFAULT_GATES.get(precision, DEFAULT_GATES["fp32"]))
    gates = {g.metric: g for g in (Gate.parse(s) for s in defaults)}
    for key in ("*", precision):
        for g in (overrides or {}).get(key, []):
            gates[g.metric] = g
    return list(gates.values())


def lookup(quality: Mapping[str, Any], metric: str, baseline: bool = False) -> float | None:
    """Find ``metric`` in a quality dict (closeness@F, nested task metrics, error stats)."""
    if metric.startswith("closeness@"):
        curve = quality.get("closeness", {})
        key = f"{float(metric.split('@', 1)[1]):g}"
        return None if baseline else curve.get(key)
    name = f"baseline_{metric}" if baseline else metric
    for section in (
        "reference",
        "classification",
        "segmentation",
        "detection",
        "regression",
        "embedding",
        "generic",
        "sparsity",
    ):
        sec = quality.get(section)
        if isinstance(sec, dict) and name in sec:
            v = sec[name]
            return float(v) if v is not None else None
    if name in quality and isinstance(quality[name], (int, float)):
        return float(quality[name])
    errs = quality.get("errors", {})
    if name in errs and isinstance(errs[name], (int, float)):
        return float(errs[name])
    return None


@dataclass
class GateResult:
    gate: Gate
    value: float | None
    required: float | None
    passed: bool
    skipped_reason: str | None = None
    hint: str = ""
    output: str | None = None  # the model output judged, when it has several

    def line(self) -> str:
        where = f"[{self.output}] " if self.output else ""
        if self.skipped_reason:
            return f"{where}{self.gate}: not applied ({self.skipped_reason})"
        verdict = "ok" if self.passed else "FAILED"
        v = "n/a" if self.value is None else f"{self.value:.6g}"
        r = "n/a" if self.required is None else f"{self.required:.6g}"
        return f"{where}{self.gate.metric} = {v} (required {self.gate.op} {r}) {verdict}{self.hint}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "gate": str(self.gate),
            "value": self.value,
            "required": self.required,
            "passed": self.passed,
            "skipped": self.skipped_reason,
            **({"output": self.output} if self.output else {}),
        }


def evaluate(
    gates: Iterable[Gate],
    quality: Mapping[str, Any],
    *,
    trained: bool,
    base: Any = None,
    out: Any = None,
    reference: bool = False,
) -> list[GateResult]:
    """Check every gate against ``quality``; NaN/Inf in the output always fails.

    ``reference``: a same-recipe reference was computed (the rule's metrics are in ``quality``); with
    random weights the default absolute gates then stand aside for the rule.
    """
    results = []
    errs = quality.get("errors", {})
    if errs.get("nan", 0) or errs.get("inf", 0):
        g = Gate("nan_or_inf", "<=", 0)
        results.append(
            GateResult(
                g,
                float(errs.get("nan", 0) + errs.get("inf", 0)),
                0.0,
                False,
                hint=f" ({errs.get('nan', 0)} NaN, {errs.get('inf', 0)} Inf in the output)",
            )
        )
    for g in gates:
        judged = _standing_aside(g, quality, trained, reference) or _judge_one(g, quality, base, out)
        if judged is not None:
            results.append(judged)
    return results


def _standing_aside(g: Gate, quality: Mapping[str, Any], trained: bool, reference: bool) -> GateResult | None:
    """The gate's result where it does not apply here (with why), else None."""
    value = lookup(quality, g.metric)
    if reference and not trained and not g.rule and not g.user and not g.needs_trained:
        why = "random weights amplify rounding: judged by the same-recipe reference"
        return GateResult(g, value, None, True, skipped_reason=why)
    if g.needs_trained and not trained:
        return GateResult(
            g,
            value,
            None,
            True,
            skipped_reason="random weights: logits nearly tied, agreement not meaningful",
        )
    scale_kind = (quality.get("closeness_scale") or {}).get("kind", "")
    if g.metric.startswith("closeness@") and scale_kind.startswith("degenerate"):
        return _degenerate(g, quality, scale_kind)
    own = lookup(quality, "sample_identity_required") if g.metric == "sample_identity" else None
    if own is not None and own < 1 and not g.user and value is not None:
        why = (
            f"the reference itself tells only {own:.0%} of the samples apart (its outputs are nearer "
            "to other samples' fp32 outputs): a mix-up cannot be told from rounding on these inputs"
        )
        return GateResult(g, value, g.value, True, skipped_reason=why)
    return None


def _judge_one(g: Gate, quality: Mapping[str, Any], base: Any, out: Any) -> GateResult | None:
    """The gate checked against its metric; None where neither the metric nor a user asked for it exist."""
    value = lookup(quality, g.metric)
    if value is None:  # the metric does not exist for this task or data (e.g. accuracy without labels)
        if not g.user:
            return None
        why = "this output has no such metric (its task or data does not compute it)"
        return GateResult(g, None, g.value, True, skipped_reason=why)  # asked for: it appears, with why
    required = g.value
    if g.relative:
        b = lookup(quality, g.metric, baseline=True)
        if b is None:
            return None
        required = g.value * b
    ok = (value >= required) if g.op == ">=" else (value <= required)
    if math.isnan(value):
        ok = False
    hint = ""
    if not ok and g.metric.startswith("closeness@") and base is not None and out is not None:
        cs = quality.get("closeness_scale") or {}
        scale = float(cs.get("value") or 0.0)
        f = metrics.fraction_needed(base, out, required, scale)
        hint = f"; smallest f reaching {required:g}%: {f:.4g} (atol {f * scale:.4g}, scale {cs.get('kind')})"
    elif not ok:
        hint = f"; a gate of {g.metric}{g.op}{value:.6g} would pass"
    return GateResult(g, value, required, ok, hint=hint)


# The absolute error an honest engine may leave on an all-zero (or otherwise scale-less) baseline, where
# closeness has nothing to be relative to.
DEGENERATE_ATOL = {"fp32": 1e-6, "tf32": 1e-4, "fp16": 1e-3, "bf16": 1e-2, "int8": 1e-2}


def _degenerate(g: Gate, quality: Mapping[str, Any], kind: str) -> GateResult:
    """A closeness gate on a baseline with no scale: replaced by an absolute-error gate, said so."""
    precision = str(quality.get("gate_class") or "fp32")
    atol = DEGENERATE_ATOL.get(precision, DEGENERATE_ATOL["fp32"])
    value = lookup(quality, "min_atol")
    ok = value is not None and value <= atol
    return GateResult(
        Gate("min_atol", "<=", atol, user=g.user),
        value,
        atol,
        ok,
        hint=f" (replaces {g}: the fp32 baseline is {kind.removeprefix('degenerate: ')}, closeness has no scale)",
    )


def failure_message(case_id: str, results: list[GateResult]) -> str | None:
    failed = [r for r in results if not r.passed and not r.skipped_reason]
    if not failed:
        return None
    lines = [f"quality gate failed for {case_id}:"] + [f"  {r.line()}" for r in failed]
    lines.append(
        "  (override with --trt-gate PRECISION:METRIC>=VALUE, ini trt_gates, or @pytest.mark.trt_quality)"
    )
    return "\n".join(lines)
