"""Quality gates: parsing, defaults per precision, relative gates, and readable failures."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pytest_trt.quality import gate_names, gates, metrics


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


def test_without_a_reference_absolute_gates_apply_even_for_random_weights() -> None:
    """A reference that could not be computed never means a silent pass."""
    q = {"closeness": {"0.1": 50.0}, "errors": {"nan": 0, "inf": 0}}
    gs = gates.gates_for("fp16")
    judged = gates.evaluate(gs, q, trained=False, reference=False)
    close = next(r for r in judged if r.gate.metric == "closeness@0.1")
    assert close.skipped_reason is None and not close.passed
    # With a reference, random weights are judged by the rule and the absolute gate stands aside.
    q["reference"] = {"ref_error_ratio": 1.0, "ref_distance_ratio": 1.2, "sample_identity": 1.0}
    judged = gates.evaluate(gs, q, trained=False, reference=True)
    close = next(r for r in judged if r.gate.metric == "closeness@0.1")
    assert close.passed and close.skipped_reason and "same-recipe reference" in close.skipped_reason
    assert all(r.passed for r in judged)
    q["reference"]["ref_distance_ratio"] = 2.6  # beyond the rule's 2.5
    assert [r.gate.metric for r in gates.evaluate(gs, q, trained=False, reference=True) if not r.passed] == [
        "ref_distance_ratio"
    ]


def test_user_gates_apply_with_random_weights() -> None:
    q = {"closeness": {"0.1": 50.0}, "errors": {}, "reference": {"ref_error_ratio": 1.0}}
    user = gates.parse_overrides(["fp16:closeness@0.1>=90"])
    judged = gates.evaluate(gates.gates_for("fp16", user), q, trained=False, reference=True)
    close = next(r for r in judged if r.gate.metric == "closeness@0.1")
    assert close.gate.user and close.skipped_reason is None and not close.passed


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("fp32:closenes@0.1>=99", "did you mean closeness@0.1"),
        ("fp32:closeness@0.3>=99.999", "closeness is computed at f = 0.005, 0.01, 0.1, 0.2, 0.5, 1"),
        ("fp64:cosine_min>=0.9", "a gate names one of fp32, fp16, bf16, int8, tf32 or '*'"),
    ],
    ids=["misspelt-metric", "fraction-never-computed", "unknown-precision"],
)
def test_a_gate_that_could_never_apply_is_refused_naming_the_valid_ones(line: str, says: str) -> None:
    with pytest.raises(gates.GateSyntaxError, match=re.escape(says)):
        gates.parse_overrides([line])


def test_every_metric_a_default_gate_names_is_gateable() -> None:
    for precision in gate_names.GATE_CLASSES:
        for g in gates.gates_for(precision):
            gate_names.check(precision, g.metric)


def test_a_users_gate_on_a_metric_this_output_lacks_appears_as_not_applied() -> None:
    q = {"closeness": {"0.1": 100.0}, "errors": {}, "reference": {}}
    user = gates.parse_overrides(["*:top1_agreement>=0.99"])
    judged = gates.evaluate(user["*"], q, trained=True)
    assert [r.gate.metric for r in judged] == ["top1_agreement"]
    assert judged[0].skipped_reason and "no such metric" in judged[0].skipped_reason


def test_a_closeness_gate_on_an_all_zero_baseline_is_replaced_by_an_absolute_error_gate() -> None:
    base = np.zeros((2, 16))
    for out, passes in ((base + 1e-9, True), (base + 0.5, False)):
        q = metrics.quality("generic", base, out)
        q["gate_class"] = "fp32"
        judged = gates.evaluate([gates.Gate.parse("closeness@0.01>=99")], q, trained=True)
        assert [r.gate.metric for r in judged] == ["min_atol"] and judged[0].passed is passes
        assert "all zero" in judged[0].hint


def test_sample_identity_stands_aside_where_the_reference_cannot_tell_samples_apart() -> None:
    rule = [gates.Gate.parse("sample_identity>=1")]
    blind = {"errors": {}, "reference": {"sample_identity": 0.125, "sample_identity_required": 0.375}}
    judged = gates.evaluate(rule, blind, trained=True, reference=True)
    assert judged[0].passed and "tells only 38% of the samples apart" in (judged[0].skipped_reason or "")
    sharp = {"errors": {}, "reference": {"sample_identity": 0.875, "sample_identity_required": 1.0}}
    judged = gates.evaluate(rule, sharp, trained=True, reference=True)
    assert not judged[0].passed and judged[0].skipped_reason is None  # a mix-up the reference can see fails
