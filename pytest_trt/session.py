"""Per-session state: the models, exported ONNX files, baselines, same-recipe references and the engine
in use, shared by the tests of one pytest process (``trt_session``).  Each artifact is made once."""

from __future__ import annotations

import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pytest_trt import backends, datasets, jetson, metrics, reference, zoo
from pytest_trt.backends.base import BuildContext, BuildFailed, BuiltNotRunnable, Engine
from pytest_trt.cache import ArtifactCache
from pytest_trt.export import ExportSettings, OnnxModel, export_onnx
from pytest_trt.matrix import Case, Request, hw_range_for
from pytest_trt.options import Settings
from pytest_trt.recipes import apply_graph_recipe, graph_recipe

REFERENCE_CACHE_BYTES = 2 << 30  # same-recipe reference outputs kept in host memory at most


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
        self._failed: dict[tuple[Any, ...], BuildFailed | BuiltNotRunnable] = {}
        # Bounded: a segmentation reference at 512 px is ~350 MB; matrix order keeps reuse local.
        self._references: OrderedDict[tuple[Any, ...], reference.Reference] = OrderedDict()
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
            self._references.move_to_end(key)
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
        while (
            len(self._references) > 1
            and sum(r.outputs.nbytes for r in self._references.values() if r.outputs is not None)
            > REFERENCE_CACHE_BYTES
        ):
            self._references.popitem(last=False)  # least recently used first
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
        except (BuildFailed, BuiltNotRunnable) as exc:  # the next case of this group gets the same answer
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
