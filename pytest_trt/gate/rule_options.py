"""The regression rule's settings, declared once for both places that gate a run: ``pytest-trt compare``
(``--threshold`` ...) and the in-session gate of ``pytest --trt-baseline FILE`` (``--trt-baseline-threshold``
...).  Each entry has its type, default and help; :func:`add_rule_options` registers them with either
parser and :func:`rule_from` builds the :class:`~pytest_trt.gate.compare.Rule` from the parsed values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # light at import: `pytest-trt run` declares these options without loading scipy
    from pytest_trt.gate.compare import Rule


@dataclass(frozen=True)
class RuleOption:
    name: str  # the flag without its prefix: --threshold, --trt-baseline-threshold
    help: str
    type: Callable[[str], Any] | None = float
    default: Any = None
    choices: tuple[str, ...] | None = None
    switch: bool = False  # a flag without a value

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    def kwargs(self) -> dict[str, Any]:
        if self.switch:
            return {"action": "store_true", "default": False, "help": self.help}
        out: dict[str, Any] = {"default": self.default, "help": self.help}
        if self.type is not None:
            out["type"] = self.type
        if self.choices:
            out["choices"] = self.choices
        return out


RULE_OPTIONS: tuple[RuleOption, ...] = (
    RuleOption("threshold", "latency ratio threshold in %% (default 5)", default=5.0),
    RuleOption("floor-us", "absolute latency floor in us (default 2)", default=2.0),
    RuleOption(
        "alpha",
        "false-alarm rate of the whole comparison (default 0.01: 1 in 100 unchanged suites)",
        default=0.01,
    ),
    RuleOption("power", "chance of catching a change of exactly the threshold (default 0.98)", default=0.98),
    RuleOption(
        "noise-model",
        "run-to-run noise prior (JSON from `pytest-trt noise`), or none; default: the bundled H100 fit for GPU runs",
        type=None,
    ),
    RuleOption("closeness-tol", "allowed closeness drop, percentage points (default 1)", default=1.0),
    RuleOption("ratio-tol", "allowed agreement/accuracy drop, absolute (default 0.01)", default=0.01),
    RuleOption(
        "metric",
        "the statistic compared (default median)",
        type=None,
        default="median",
        choices=("median", "mean", "p99", "min"),
    ),
    RuleOption("across-env", "judge even when GPU/driver/TensorRT/recipe differ", switch=True),
    RuleOption("include-invalid", "judge runs marked invalid (unstable) too", switch=True),
)


def _dest(prefix: str, o: RuleOption) -> str:
    """Where a parser stores ``prefix + o.name``: ``--trt-baseline-floor-us`` -> ``trt_baseline_floor_us``."""
    return prefix.lstrip("-").replace("-", "_") + o.dest


def add_rule_options(add: Callable[..., Any], prefix: str = "--", skip: tuple[str, ...] = ()) -> None:
    """Register every rule option through ``add`` (argparse's ``add_argument`` or pytest's ``addoption``)
    as ``prefix + name``, with the dest :func:`rule_from` reads back (pytest's ``addoption`` needs one)."""
    for o in RULE_OPTIONS:
        if o.name not in skip:
            add(prefix + o.name, dest=_dest(prefix, o), **o.kwargs())


def rule_from(value: Callable[[str], Any], prefix: str = "--", **overrides: Any) -> Rule:
    """The rule from the parsed options: ``value(dest)`` reads one (``args.__dict__.get`` or
    ``config.getoption``); raises ValueError naming a noise model that cannot be read."""
    from pytest_trt.gate import latency_rule
    from pytest_trt.gate.compare import Rule

    def get(o: RuleOption) -> Any:
        v = value(_dest(prefix, o))
        return o.default if v is None else v

    opts = {o.name: get(o) for o in RULE_OPTIONS}
    noise_arg = opts["noise-model"]
    noise = None
    if noise_arg and noise_arg != "none":
        try:
            noise = latency_rule.NoiseModel.load(noise_arg)
        except ValueError as exc:
            raise ValueError(f"{prefix}noise-model: {exc}") from None
    kwargs: dict[str, Any] = {
        "threshold": opts["threshold"] / 100,
        "floor_s": opts["floor-us"] * 1e-6,
        "alpha": opts["alpha"],
        "power": opts["power"],
        "noise": noise,
        "use_bundled_noise": noise_arg != "none",
        "closeness_tol_pp": opts["closeness-tol"],
        "ratio_tol": opts["ratio-tol"],
        "across_env": bool(opts["across-env"]),
        "include_invalid": bool(opts["include-invalid"]),
        "metric": opts["metric"],
    }
    kwargs.update(overrides)
    return Rule(**kwargs)
