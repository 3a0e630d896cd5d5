"""Fixtures and the per-session state behind them.

``trt_session`` (session scope) owns the cache, the loaded models, exported ONNX files, baselines and
the engine in use.  ``trt_run`` (per test) is what a benchmark calls: it builds or reuses the engine,
evaluates output quality against the PyTorch fp32 baseline, times inference through the
``benchmark`` fixture, samples telemetry, records everything in ``extra_info`` and finally asserts
the quality gates -- in that order, so a quality failure never loses the timing.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from pytest_trt import (
    backends,
    datasets,
    gates,
    jetson,
    metrics,
    reference,
    results,
    telemetry,
    timing,
    zoo,
)
from pytest_trt.backends.base import BuildContext, BuildFailed, Engine
from pytest_trt.cache import ArtifactCache
from pytest_trt.export import ExportSettings, OnnxModel, export_onnx
from pytest_trt.matrix import Case, Request, hw_range_for
from pytest_trt.options import Settings
from pytest_trt.recipes import apply_graph_recipe, graph_recipe

SETTINGS_KEY = pytest.StashKey[Settings]()
SESSION_KEY = pytest.StashKey["TrtSession"]()


@dataclass
class Baseline:
    samples: datasets.Samples
    outputs: np.ndarray
    seconds: float
    noise: dict[str, Any]


class TrtSession:
    """Artifacts shared by the tests of one pytest process."""

    def __init__(self, settings: Settings, verbose: int = 0) -> None:
        self.settings = settings
        self.verbose = verbose
        self.cache = ArtifactCache(settings.cache_dir)
        self.records: dict[str, dict[str, Any]] = {}
        self._models: dict[str, tuple[nn.Module, str]] = {}
        self._onnx: dict[tuple[Any, ...], OnnxModel] = {}
        self._baselines: dict[tuple[Any, ...], Baseline] = {}
        self._engine: tuple[tuple[Any, ...], Engine] | None = None
        self._failed: dict[tuple[Any, ...], BuildFailed] = {}
        self._references: dict[tuple[Any, ...], reference.Reference] = {}
        self.weight_failures: dict[str, str] = {}  # model -> why --trt-weights auto fell back to random
        self.data = datasets.DataConfig(
            settings.dataset, settings.samples, settings.calib_samples, settings.seed
        )
        self.on_jetson = jetson.board() is not None

    # -- models and artifacts ------------------------------------------------------------------
    def model(self, name: str) -> tuple[nn.Module, str]:
        if name not in self._models:
            self._models[name] = zoo.load_model(
                zoo.get(name), self.settings.weights, self.settings.seed, self.weight_failures.get(name)
            )
        return self._models[name]

    def fetch_weights(self, names: list[str]) -> dict[str, str]:
        """``--trt-weights auto``: download the selected models' weights now (once); failures by model."""
        if self.settings.weights != "auto":
            return {}
        for name in names:
            if name not in self.weight_failures and name not in self._models:
                reason = zoo.fetch_weights(zoo.get(name))
                if reason is not None:
                    self.weight_failures[name] = reason
        return {n: self.weight_failures[n] for n in names if n in self.weight_failures}

    def input_shape(self, case: Case) -> tuple[int, ...]:
        return zoo.get(case.model).input.with_hw(case.hw)

    def onnx(self, case: Case, req: Request) -> OnnxModel:
        hw_range = hw_range_for(case, self.settings, req)
        es = ExportSettings(
            dynamic_batch=case.profile == "dynamic",
            static_batch=case.batch,
            dynamic_hw=hw_range is not None,
            hw=case.hw,
        )
        key = (case.model, es)
        if key not in self._onnx:
            module, source = self.model(case.model)
            self._onnx[key] = export_onnx(self.cache, zoo.get(case.model), module, source, es)
        return self._onnx[key]

    def eval_samples(self, case: Case) -> datasets.Samples:
        spec = zoo.get(case.model)
        return datasets.eval_samples(self.data, self.input_shape(case), spec.data, spec.input.vocab)

    def calibration(self, case: Case) -> datasets.Samples:
        spec = zoo.get(case.model)
        return datasets.calibration_samples(self.data, self.input_shape(case), spec.data, spec.input.vocab)

    def reference(self, case: Case, req: Request, engine: Engine, gate_class: str) -> reference.Reference:
        """The same-recipe reference for ``case`` (computed once per model, resolution and recipe)."""
        recipe = engine.info.recipe
        int8 = gate_class == "int8"  # its reference is a graph: per recipe and exported batch profile
        key: tuple[Any, ...] = (case.model, case.hw, gate_class, recipe.name if int8 else None)
        if int8:
            key += (case.profile, case.batch if case.profile == "static" else None)
        if key in self._references:
            return self._references[key]
        dev = self.settings.device
        kind = reference.describe(gate_class, dev.torch)
        base = self.baseline(case)
        try:
            if gate_class == "fp32":
                ref = reference.Reference(kind, base.outputs)
            elif gate_class == "tf32" and not dev.is_cuda:
                ref = reference.unavailable(kind, "TF32 exists only on CUDA devices")
            elif gate_class in ("tf32", "fp16", "bf16"):
                module, _ = self.model(case.model)
                out = reference.torch_outputs(module, base.samples.x, dev.torch, gate_class)
                ref = reference.Reference(kind, out)
            elif gate_class == "int8":
                s = self.settings
                ref_recipe, exact = reference.int8_graph(
                    recipe, lambda: graph_recipe("int8", s.calib_method, s.recipe_tool)
                )
                graph = apply_graph_recipe(
                    self.cache, self.onnx(case, req), ref_recipe, self.calibration(case)
                )
                out = reference.graph_outputs(graph.path, base.samples.x)
                ref = reference.Reference(f"{kind}: {ref_recipe.name}", out, exact=exact)
            else:
                ref = reference.unavailable(kind, f"no reference is defined for {gate_class}")
        except Exception as exc:  # a reference that cannot be computed is said in the result
            ref = reference.unavailable(kind, f"{type(exc).__name__}: {str(exc)[:300]}")
        self._references[key] = ref
        return ref

    def baseline(self, case: Case) -> Baseline:
        """PyTorch fp32 outputs on the evaluation samples, computed twice to expose baseline noise."""
        key = (case.model, case.hw)
        if key in self._baselines:
            return self._baselines[key]
        module, _ = self.model(case.model)
        samples = self.eval_samples(case)
        dev = self.settings.device.torch
        prev = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = (
            False  # strict fp32 reference
        )
        try:
            m = module.to(dev)
            t0 = time.perf_counter()
            first = _forward(m, samples.x, dev)
            seconds = time.perf_counter() - t0
            second = _forward(m, samples.x, dev)
            module.to("cpu")
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev
        noise = {
            "deterministic": bool(np.array_equal(first, second)),
            "max_abs_diff": float(np.max(np.abs(first - second))) if first.size else 0.0,
            "closeness": metrics.closeness(first, second),
        }
        b = Baseline(samples, first, seconds, noise)
        self._baselines[key] = b
        return b

    # -- engines -------------------------------------------------------------------------------
    def engine(self, case: Case, req: Request) -> Engine:
        group = case.engine_group
        if group in self._failed:
            raise self._failed[group]
        if self._engine is not None and self._engine[0] == group:
            return self._engine[1]
        self.release_engine()  # one engine at a time keeps device memory bounded
        settings = self.settings
        hw_range = hw_range_for(case, settings, req)
        spec = settings.build_spec(
            case.precision, case.profile, case.batch, case.opt_level, case.hw, hw_range
        )
        backend = backends.get(case.backend)
        onnx_model = self.onnx(case, req) if backend.consumes_onnx else None
        ctx = BuildContext(
            cache=self.cache,
            spec=spec,
            model_spec=zoo.get(case.model),
            onnx=onnx_model,  # type: ignore[arg-type]  # the torch backends never read it
            device=settings.device,
            torch_model=lambda: _fresh_copy(self.model(case.model)[0]),
            calibration=lambda: self.calibration(case),
            verbose=self.verbose,
        )
        try:
            eng = backend.build(ctx)
        except BuildFailed as exc:
            self._failed[group] = exc
            raise
        except Exception as exc:  # any failure is this configuration's result, not a crash of the session
            if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
                err = BuildFailed(f"out of memory building {case.id}: {exc}", oom=True)
            else:
                err = BuildFailed(
                    f"{type(exc).__name__} building {case.id}: {exc}", [traceback.format_exc()[-3000:]]
                )
            self._failed[group] = err
            raise err from exc
        self._engine = (group, eng)
        return eng

    def release_engine(self) -> None:
        if self._engine is not None:
            self._engine[1].close()
            self._engine = None
            if self.settings.device.is_cuda:
                torch.cuda.empty_cache()


def _fresh_copy(module: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(module)


@torch.inference_mode()
def _forward(module: nn.Module, x: np.ndarray, device: str, chunk: int = 16) -> np.ndarray:
    outs = []
    for i in range(0, len(x), chunk):
        y = module(torch.from_numpy(x[i : i + chunk]).to(device))
        if isinstance(y, dict):
            y = y["out"]
        outs.append(y.float().cpu().numpy())
    return np.concatenate(outs)


def engine_outputs(engine: Engine, x: np.ndarray, batch: int, static: bool) -> np.ndarray:
    """Run ``x`` through the engine in chunks of ``batch`` (padding the last chunk for static engines)."""
    outs = []
    for i in range(0, len(x), batch):
        chunk = x[i : i + batch]
        n = len(chunk)
        if static and n < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)])
        outs.append(engine.run(chunk)[0][:n])
    return np.concatenate(outs)


class TrtRun:
    """One configuration's benchmark: build, evaluate, measure, record, assert."""

    def __init__(self, case: Case, req: Request, session: TrtSession, request: pytest.FixtureRequest) -> None:
        self.case = case
        self.req = req
        self.session = session
        self.request = request
        self.settings = session.settings
        self.spec = zoo.get(case.model)
        self.record = results.new_record(case, request.node.nodeid, self.spec, self.settings)
        session.records[case.id] = self.record
        self._engine: Engine | None = None
        self.quality: dict[str, Any] | None = None
        self.gate_results: list[gates.GateResult] = []
        self.measurement: timing.Measurement | None = None

    @property
    def benchmark(self) -> Any:
        return self.request.node.funcargs["benchmark"]

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                try:
                    source = self.session.model(self.case.model)[1]
                    self.record["extra_info"]["weights"] = source
                    self.record["extra_info"]["weights_kind"] = zoo.weights_kind(source)
                except zoo.WeightsUnavailable as exc:  # a configuration error, recorded like a failed build
                    raise BuildFailed(str(exc)) from exc
                self._engine = self.session.engine(self.case, self.req)
            except BuildFailed as exc:
                self.record["status"] = "oom" if exc.oom else "build_failed"
                self.record["message"] = str(exc)
                self.record["extra_info"]["build_log"] = exc.log[-30:]
                self._publish()
                if self.settings.on_build_failure == "skip":
                    pytest.skip(f"{self.record['status']}: {exc}")
                pytest.fail(f"{self.record['status']}: {exc}", pytrace=False)
            self.record["extra_info"].update(results.engine_section(self._engine, self._onnx_facts()))
        return self._engine

    def _onnx_facts(self) -> dict[str, Any] | None:
        if not backends.get(self.case.backend).consumes_onnx:
            return None
        return self.session.onnx(self.case, self.req).facts()

    # -- quality -------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        base = self.session.baseline(self.case)
        out = engine_outputs(self.engine, base.samples.x, self.case.batch, self.case.profile == "static")
        labels = base.samples.labels if self.spec.task != "regression" else None
        q = metrics.quality(self.spec.task, base.outputs, out, labels)
        _, source = self.session.model(self.case.model)
        trained = zoo.is_trained(source)
        q["data"] = {
            "source": base.samples.source,
            "samples": len(base.samples),
            "labelled": labels is not None,
        }
        q["baseline_noise"] = base.noise
        q["agreement_meaningful"] = trained
        if not trained:
            q["note"] = (
                "random weights: absolute gates and top-k agreement are not meaningful; "
                "judged by the same-recipe reference"
            )
        # TF32 only exists on CUDA devices; CPU fp32 is judged as strict fp32.
        gclass = gates.gate_class(self.case.precision, self.settings.tf32 and self.settings.device.is_cuda)
        q["gate_class"] = gclass
        ref = self.session.reference(self.case, self.req, self.engine, gclass)
        q["reference"] = ref.as_dict()
        if ref.outputs is not None:
            q["reference"].update(
                metrics.against_reference(
                    base.outputs,
                    out,
                    ref.outputs,
                    floor=gates.FLOORS.get(gclass, gates.FLOORS["fp32"]),
                    task=self.spec.task,
                    trained=trained,
                    exact=ref.exact,
                )
            )
        gate_list = gates.gates_for(gclass, self._overrides())
        q["reference"]["rule"] = [str(g) for g in gate_list if g.rule]
        self.gate_results = gates.evaluate(
            gate_list, q, trained=trained, base=base.outputs, out=out, reference=ref.outputs is not None
        )
        q["gates"] = [
            {
                "gate": str(r.gate),
                "value": r.value,
                "required": r.required,
                "passed": r.passed,
                "skipped": r.skipped_reason,
            }
            for r in self.gate_results
        ]
        q["passed"] = all(r.passed for r in self.gate_results)
        self.quality = q
        self.record["extra_info"]["quality"] = q
        return q

    def _overrides(self) -> dict[str, list[gates.Gate]]:
        """--trt-gate / ini gates, then the test's trt_quality marker (both count as the user's)."""
        overrides = dict(self.settings.gates)
        marker = self.request.node.get_closest_marker("trt_quality")
        if marker is not None:
            for prec, exprs in marker.kwargs.items():
                parsed = [dataclasses.replace(gates.Gate.parse(e), user=True) for e in _listify(exprs)]
                overrides[prec] = [*overrides.get(prec, []), *parsed]
        return overrides

    # -- timing --------------------------------------------------------------------------------
    def measure(self) -> timing.Measurement:
        s = self.settings
        eng = self.engine
        base = self.session.baseline(self.case)
        x = base.samples.x
        reps = math.ceil(self.case.batch / len(x))
        feed = eng.make_feed(np.concatenate([x] * reps)[: self.case.batch])
        cfg = timing.TimingConfig(
            warmup_s=s.warmup,
            warmup_min=s.warmup_iters,
            warmup_fraction=s.warmup_fraction,
            dataset_size=len(x),
            min_rounds=s.rounds,
            min_time_s=s.min_time,
            e2e_rounds=s.e2e_rounds,
            cuda_graph=s.cuda_graph,
        )
        dev_index = s.device.index if s.device.is_cuda else None
        if s.device.is_cuda:
            # Memory "during inference" must not include what the baseline or quality pass left cached.
            gc.collect()
            torch.cuda.synchronize(s.device.torch)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(s.device.torch)
        # On Jetson, NVML is largely absent and memory is unified: tegrastats (or /proc/meminfo) is the source.
        tegra = jetson.TegraSampler().start() if self.session.on_jetson else None
        try:
            with telemetry.sampling(dev_index) as sampler:
                m = timing.measure(eng, feed, cfg, self.benchmark)
        finally:
            if tegra is not None:
                tegra.stop()
        inferences = (len(m.model_s) + len(m.e2e_s) + m.warmup_iterations) * self.case.batch
        tel = sampler.summary(inferences)
        if s.device.is_cuda:
            tel["torch_peak_allocated_mb"] = torch.cuda.max_memory_allocated(s.device.torch) / 2**20
        if tegra is not None:
            tel.update(jetson.merge_into_telemetry(tegra.summary(inferences), tel))
        self.measurement = m
        self.record["extra_info"].update(results.timing_section(m, cfg, self.case.batch, tel, eng.info))
        return m

    def run(self) -> dict[str, Any]:
        """The standard benchmark body: evaluate quality, measure, record, then assert the gates."""
        self.engine  # noqa: B018 - build (or fail/skip) first
        try:
            self.evaluate()
            self.measure()
        except Exception as exc:
            self.record["status"] = "run_failed"
            self.record["message"] = f"{type(exc).__name__}: {exc}"
            self.record["extra_info"]["traceback"] = traceback.format_exc()[-4000:]
            self._publish()
            raise
        self.record["status"] = "ok" if self.quality and self.quality["passed"] else "quality_failed"
        self._publish()
        self.assert_quality()
        return self.record

    def assert_quality(self) -> None:
        msg = gates.failure_message(self.case.id, self.gate_results)
        if msg:
            pytest.fail(msg, pytrace=False)

    def _publish(self) -> None:
        """Copy the record into pytest-benchmark's extra_info (what --benchmark-json writes)."""
        self.record["extra_info"]["status"] = self.record["status"]
        fixture = self.request.node.funcargs.get("benchmark")
        if fixture is not None:
            fixture.extra_info.update(self.record["extra_info"])


def _listify(v: Any) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


@pytest.fixture(scope="session")
def trt_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved ``--trt-*`` options of this session."""
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def trt_session(pytestconfig: pytest.Config) -> Iterator[TrtSession]:
    sess = pytestconfig.stash[SESSION_KEY]
    yield sess
    sess.release_engine()


@pytest.fixture
def trt_case(request: pytest.FixtureRequest) -> Case:
    """The configuration under test (parametrized by the plugin from options and trt_matrix)."""
    case = getattr(request, "param", None)
    if not isinstance(case, Case):
        raise pytest.UsageError(
            "trt_case is parametrized by pytest-trt; do not request it outside a benchmark"
        )
    return case


@pytest.fixture
def trt_run(
    trt_case: Case, trt_session: TrtSession, request: pytest.FixtureRequest, benchmark: Any
) -> Iterator[TrtRun]:
    """Build, evaluate and time the configuration ``trt_case`` (``benchmark`` records the timing)."""
    req = Request.from_marker(request.node.get_closest_marker("trt_matrix"))
    run = TrtRun(trt_case, req, trt_session, request)
    if trt_session.settings.device.is_cuda:
        torch.cuda.synchronize(trt_session.settings.device.torch)  # nothing queued may leak in
    yield run
    if trt_session.settings.device.is_cuda:
        torch.cuda.synchronize(trt_session.settings.device.torch)  # nor leak into the next test


@pytest.fixture
def trt_engine(trt_run: TrtRun) -> Engine:
    """The built engine of the current configuration (built once, reused while the group lasts)."""
    return trt_run.engine


@pytest.fixture
def trt_baseline(trt_run: TrtRun) -> Baseline:
    return trt_run.session.baseline(trt_run.case)


@pytest.fixture
def trt_onnx(trt_run: TrtRun) -> OnnxModel:
    return trt_run.session.onnx(trt_run.case, trt_run.req)


@pytest.fixture(scope="session")
def trt_cache(trt_session: TrtSession) -> ArtifactCache:
    return trt_session.cache
