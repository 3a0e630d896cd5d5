"""The parameter matrix: model x backend x precision x profile x batch x opt level (x resolution).

A benchmark declares what it cares about with ``@pytest.mark.trt_matrix(...)``; options the user set
explicitly narrow it; machine defaults fill the rest.  Ids are stable and readable
(``resnet152-tensorrt-fp16-dynamic-b32-opt3``, ``deeplabv3_resnet50-torch-fp32-dynamic-b1-opt3-512px``)
because pytest-benchmark matches baselines by them: no version or machine detail ever enters an id.
Configurations a backend cannot run here are generated with a skip mark carrying the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import pytest

from pytest_trt.engines import registry as backends
from pytest_trt.models import pruning, user_models, zoo
from pytest_trt.plugin.settings import Settings

MATRIX_KEYS = (
    "models",
    "task",
    "tag",
    "backends",
    "precisions",
    "batches",
    "profiles",
    "opt_levels",
    "static_batches",
    "hws",
    "dynamic_hw",
)


@dataclass(frozen=True, order=True)
class Case:
    model: str
    backend: str
    precision: str
    profile: str
    batch: int
    opt_level: int
    hw: int | None = None

    @property
    def id(self) -> str:
        s = f"{self.model}-{self.backend}-{self.precision}-{self.profile}-b{self.batch}-opt{self.opt_level}"
        return s + (f"-{self.hw}{zoo.get(self.model).input.size_unit}" if self.hw else "")

    @property
    def engine_group(self) -> tuple[Any, ...]:
        """Cases that share one built engine (a dynamic engine serves every batch in its range)."""
        return (
            self.model,
            self.backend,
            self.precision,
            self.profile,
            self.opt_level,
            self.batch if self.profile == "static" else None,
            self.hw,
        )

    def params(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class InvalidModel:
    """A user's model whose declaration cannot be used: its one test fails with ``message``."""

    model: str
    message: str

    @property
    def id(self) -> str:
        return f"{self.model}-invalid"


@dataclass(frozen=True)
class Request:
    models: tuple[str, ...] | None = None
    task: str | None = None
    tag: str | None = None
    backends: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    batches: tuple[int, ...] | None = None
    profiles: tuple[str, ...] | None = None
    opt_levels: tuple[int, ...] | None = None
    static_batches: tuple[int, ...] | None = None  # static engines only for these batches
    hws: tuple[int, ...] | None = None
    dynamic_hw: bool = False

    @staticmethod
    def from_marker(marker: pytest.Mark | None) -> Request:
        if marker is None:
            return Request()
        bad = set(marker.kwargs) - set(MATRIX_KEYS)
        if bad or marker.args:
            raise pytest.UsageError(
                f"trt_matrix marker: unknown argument(s) {sorted(bad) or marker.args}; allowed: {', '.join(MATRIX_KEYS)}"
            )
        kw: dict[str, Any] = {
            k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in marker.kwargs.items()
        }
        return Request(**kw)


def _pick(explicit: bool, user: Iterable[Any], declared: Iterable[Any] | None) -> list[Any]:
    """User-set options win; otherwise the benchmark's declaration; otherwise the machine default."""
    if explicit or declared is None:
        return list(user)
    return list(declared)


def models_for(req: Request, settings: Settings) -> list[str]:
    names = list(req.models) if req.models is not None else zoo.names(task=req.task, tag=req.tag)
    for n in names:
        zoo.get(n)  # unknown names are an error now, not at run time
    if settings.models is not None:  # names no module declares are one usage error at collection's end
        names = [n for n in names if n in settings.models]
    return names


def unknown_models(settings: Settings) -> str | None:
    """The usage error for ``--trt-models`` names that nothing registered (checked once every test
    module, which may register models, has been imported), or None."""
    if settings.models is None:
        return None
    unknown = [m for m in settings.models if m not in zoo.names()]
    if not unknown:
        return None
    import difflib

    hints = [
        f"{m!r}: did you mean {close[0]!r}?"
        for m in unknown
        if (close := difflib.get_close_matches(m, zoo.names(), 1))
    ]
    return (
        f"--trt-models: unknown model(s) {', '.join(unknown)}{' (' + '; '.join(hints) + ')' if hints else ''}; "
        f"registered: {', '.join(zoo.names())}"
    )


def expand(req: Request, settings: Settings) -> list[Any]:
    """pytest.param objects (one per Case), with skip marks where a case cannot run here."""
    ex = settings.explicit
    bks = _pick("backend" in ex, settings.backends, req.backends)
    precs = _pick("precision" in ex, settings.precisions, req.precisions)
    batches = _pick("batch" in ex, settings.batches, req.batches)
    profiles = _pick("profile" in ex, settings.profiles, req.profiles)
    opts = _pick("opt-level" in ex, settings.opt_levels, req.opt_levels)
    out = []
    seen: set[str] = set()
    selected = models_for(req, settings)
    # A declaration of the user's that clashes with a zoo name is reported wherever user models are asked for.
    reported = []
    if req.tag == user_models.USER_TAG:
        reported = [
            n
            for n in user_models.problem_names()
            if n not in selected and (settings.models is None or n in settings.models)
        ]
    for model_name in [*selected, *reported]:
        problem = user_models.problem(model_name)
        if problem is not None:
            out.append(pytest.param(InvalidModel(model_name, problem), id=f"{model_name}-invalid"))
            if model_name in reported or not user_models.is_builtin(model_name):
                continue
        spec = zoo.get(model_name)
        m_batches, m_profiles = _model_batches(spec, batches, profiles, "batch" in ex)
        hws: list[int | None] = [None]
        if spec.input.hw_range:
            hws = list(settings.hws or req.hws or [spec.input.default_size])
        for bname in bks:
            backend = backends.get(bname)
            # Eager frameworks have no build-time profile: one entry, "dynamic" (any batch) when asked for.
            if not backend.consumes_onnx:
                b_profiles = ["dynamic"] if "dynamic" in m_profiles else m_profiles[:1]
            else:
                b_profiles = m_profiles
            b_opts = opts if backend.uses_opt_level else opts[:1]
            for prec in precs:
                for prof in b_profiles:
                    for opt in b_opts:
                        for hw in hws:
                            for batch in m_batches:
                                if (
                                    prof == "static"
                                    and req.static_batches is not None
                                    and "batch" not in ex
                                    and batch not in req.static_batches
                                ):
                                    continue
                                case = Case(model_name, bname, prec, prof, batch, opt, hw)
                                if case.id in seen:
                                    continue
                                seen.add(case.id)
                                reason = skip_reason(case, settings, req)
                                marks = [pytest.mark.skip(reason=reason)] if reason else []
                                out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def _model_batches(
    spec: zoo.ModelSpec, batches: list[int], profiles: list[str], explicit: bool
) -> tuple[list[int], list[str]]:
    """A user's graph may fix its batch (then only a static profile exists) or name its own batch
    (a batch in --trt-shapes); an explicit --trt-batch still wins, with skips saying why."""
    if spec.fixed_batch is not None:
        return (batches if explicit else [spec.fixed_batch]), ["static"]
    if spec.batches and not explicit:
        return list(spec.batches), profiles
    return batches, profiles


def hw_range_for(case: Case, settings: Settings, req: Request) -> tuple[int, int, int] | None:
    spec = zoo.get(case.model)
    if not spec.input.hw_range or not (req.dynamic_hw or settings.dynamic_hw):
        return None
    return settings.dynamic_hw or spec.input.hw_range


def skip_reason(case: Case, settings: Settings, req: Request) -> str | None:
    spec = zoo.get(case.model)
    avail = backends.availability(case.backend)
    if not avail.ok:
        return f"{case.backend} unavailable: {avail.reason}"
    if spec.prune is not None and (why := pruning.unavailable()):
        return f"{case.model}: {why}"
    if spec.fixed_batch is not None and case.batch != spec.fixed_batch:
        return (
            f"{case.model} fixes the batch at {spec.fixed_batch} in its graph; batch {case.batch} cannot run"
        )
    lo, _, hi = spec.batch_range or settings.dynamic_batch
    if case.profile == "dynamic" and not lo <= case.batch <= hi:
        where = "its min/max shapes" if spec.batch_range else "--trt-dynamic-batch"
        return f"batch {case.batch} outside the dynamic profile {lo}..{hi} (set {where})"
    hw_range = hw_range_for(case, settings, req)
    if case.hw is not None:
        m = spec.input.hw_multiple
        if case.hw % m:
            return f"{case.model} needs H and W divisible by {m}; {case.hw} is not"
        if hw_range and not hw_range[0] <= case.hw <= hw_range[2]:
            return f"resolution {case.hw} outside the dynamic H/W profile {hw_range[0]}..{hw_range[2]}"
    spec_b = settings.build_spec(case.precision, case.profile, case.batch, case.opt_level, case.hw, hw_range)
    reason = backends.get(case.backend).unsupported(spec_b, spec, settings.device)
    if reason:
        return reason
    if settings.power_modes is not None:
        from pytest_trt.hardware import jetson

        mode = jetson.power_mode_key()
        if mode is None:
            return f"--trt-power-mode {settings.power_modes}: not a Jetson board (no nvpmodel power mode)"
        if int(mode.split(":")[0]) not in settings.power_modes:
            return f"board is in power mode {mode}, run is meant for {settings.power_modes} (switch with nvpmodel -m)"
    return None
