"""The regression rule's settings are declared once and mean the same in `pytest-trt compare` and in the
in-session gate of `pytest --trt-baseline`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pytest_trt.cli import build_parser
from pytest_trt.gate.rule_options import RULE_OPTIONS, rule_from

SETTINGS = {"threshold": "3", "floor-us": "7", "alpha": "0.05", "power": "0.9", "metric": "p99"}


def test_compare_and_the_session_gate_build_the_same_rule(pytester: pytest.Pytester) -> None:
    cli = build_parser().parse_args(
        ["compare", "a.json", "b.json", *[f"--{k}={v}" for k, v in SETTINGS.items()]]
    )
    from_cli = rule_from(vars(cli).get)
    config = pytester.parseconfig(*[f"--trt-baseline-{k}={v}" for k, v in SETTINGS.items()])
    from_session = rule_from(lambda dest: config.getoption(dest, None), prefix="--trt-baseline-")
    assert dataclasses.asdict(from_cli) == dataclasses.asdict(from_session)
    assert (from_cli.threshold, from_cli.floor_s, from_cli.metric) == (0.03, pytest.approx(7e-6), "p99")


def test_unset_options_take_the_rules_documented_defaults() -> None:
    rule = rule_from(lambda dest: None)
    assert dataclasses.asdict(rule) == dataclasses.asdict(
        type(rule)()
    )  # the table's defaults are the Rule's own
    assert {o.name for o in RULE_OPTIONS} >= {"threshold", "floor-us", "alpha", "power", "metric"}


def test_an_unreadable_noise_model_for_the_session_gate_is_a_usage_error(pytester: pytest.Pytester) -> None:
    base = pytester.path / "base.json"
    base.write_text(json.dumps({"machine_info": {}, "benchmarks": []}))
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_inprocess(
        f"--trt-baseline={base}", f"--trt-baseline-noise-model={Path('missing.json')}", "--trt-device=cpu"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--trt-baseline-noise-model*missing.json*"])
