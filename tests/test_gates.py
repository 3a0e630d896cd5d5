"""Quality gates: parsing, defaults per precision, relative gates, and readable failures."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_trt import gates, metrics


def test_parse_and_overrides() -> None:
    g = gates.Gate.parse("accuracy_top1>=0.99xbase")
    assert (g.metric, g.op, g.value, g.relative, g.needs_trained) == ("accuracy_top1", ">=", 0.99, True, True)
    ov = gates.parse_overrides(["int8:closeness@1>=90", "*:cosine>=0.999"])
    int8 = {x.metric: x for x in gates.gates_for("int8", ov)}
    assert int8["closeness@1"].value == 90 and "cosine" in int8
    assert {x.metric for x in gates.gates_for("fp32", ov)} >= {"closeness@0.01", "cosine"}
    with pytest.raises(gates.GateSyntaxError):
        gates.parse_overrides(["closeness@1>=90"])


def test_defaults_loosen_with_precision() -> None:
    def closeness_gate(p: str) -> tuple[float, float]:
        g = next(x for x in gates.gates_for(p) if x.metric.startswith("closeness"))
        return float(g.metric.split("@")[1]), g.value

    fs = [closeness_gate(p)[0] for p in ("fp32", "fp16", "bf16", "int8")]
    assert fs == sorted(fs)  # looser atol fraction as precision drops


def test_perturbed_model_fails_with_achieved_and_required() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((8, 100))
    out = base + rng.standard_normal(base.shape) * 0.5  # a badly perturbed "engine"
    q = metrics.quality("classification", base, out)
    res = gates.evaluate(gates.gates_for("fp16"), q, trained=False, base=base, out=out)
    msg = gates.failure_message("m-ort-fp16", res)
    assert msg is not None
    assert "closeness@0.1 = " in msg and "(required >= 99) FAILED" in msg and "smallest f reaching 99%" in msg
    skipped = [r for r in res if r.skipped_reason]
    assert skipped and "random weights" in skipped[0].skipped_reason  # agreement not gated


def test_relative_accuracy_gate_and_nan() -> None:
    base = np.eye(4) * 5
    out = base.copy()
    out[0] = [0, 5, 0, 0]
    labels = np.arange(4)
    q = metrics.quality("classification", base, out, labels)
    res = gates.evaluate([gates.Gate.parse("accuracy_top1>=0.99xbase")], q, trained=True)
    assert (
        not res[0].passed and res[0].required == pytest.approx(0.99) and res[0].value == pytest.approx(0.75)
    )
    qn = metrics.quality("classification", base, np.full_like(base, np.nan))
    res = gates.evaluate(gates.gates_for("fp32"), qn, trained=True, base=base, out=np.full_like(base, np.nan))
    assert any(r.gate.metric == "nan_or_inf" and not r.passed for r in res)


def test_tf32_is_its_own_gate_class() -> None:
    assert gates.gate_class("fp32", tf32=True) == "tf32" and gates.gate_class("fp32", tf32=False) == "fp32"
    assert gates.gate_class("fp16", tf32=True) == "fp16"
    tf32 = {g.metric: g.value for g in gates.gates_for("tf32")}
    assert "closeness@0.1" in tf32 and "closeness@0.01" not in tf32
    ov = gates.parse_overrides(["tf32:closeness@0.2>=98"])
    assert {g.metric for g in gates.gates_for("tf32", ov)} >= {"closeness@0.1", "closeness@0.2"}
