"""Per-session state: the models, exported ONNX files, baselines, same-recipe references and the engine
in use, shared by the tests of one pytest process (``trt_session``).  Each artifact is made once."""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from pytest_trt.cache import ArtifactCache
from pytest_trt.engines import registry as backends
from pytest_trt.engines.layout import batch_first
from pytest_trt.engines.onnxrt.unfused import graph_outputs
from pytest_trt.engines.prepare import graph_takes_samples
from pytest_trt.engines.protocol import BuildContext, BuildFailed, BuiltNotRunnable, Engine
from pytest_trt.engines.recipes import apply_graph_recipe, graph_recipe
from pytest_trt.hardware import jetson
from pytest_trt.hardware.cuda_warmup import Warmup
from pytest_trt.models import datasets, onnx_models, user_data, zoo
from pytest_trt.models.export import ExportSettings, OnnxModel, export_onnx
from pytest_trt.plugin import progress, result_files
from pytest_trt.plugin.matrix import Case, Request, hw_range_for
from pytest_trt.plugin.settings import Settings
from pytest_trt.quality import metrics, reference
from pytest_trt.run import wall

if TYPE_CHECKING:
    from pytest_trt.plugin.records import CaseRecord
    from pytest_trt.plugin.timed import Isolation, Sentinel
    from pytest_trt.quality.detection import Fp32Detections

REFERENCE_CACHE_BYTES = 2 << 30  # same-recipe reference outputs kept in host memory at most
DENSE_EVAL_PIXELS = 16 * 320 * 320  # a segmenter's evaluation pixels: 16 images at 320 px (1.6 M pixels)
DENSE_EVAL_MIN = 4


@dataclass
class Fp32Outputs:
    """The strict-fp32 outputs every engine of a model is judged against (the ``trt_baseline`` fixture)."""

    samples: datasets.Samples
    outputs: list[np.ndarray]  # one array per model output
    seconds: float
    noise: dict[str, Any]
    names: list[str]  # the outputs' names
    kind: str = "PyTorch fp32 (strict)"  # what computed them


class TrtSession:
    """Artifacts shared by the tests of one pytest process."""

    def __init__(self, settings: Settings, verbose: int = 0) -> None:
        self.settings = settings
        self.verbose = verbose
        self.cache = ArtifactCache(settings.cache_dir)
        self.records: dict[str, CaseRecord] = {}  # every case of this process, in the order it ran
        self._models: dict[str, tuple[nn.Module, str]] = {}
        self._onnx: dict[tuple[Any, ...], OnnxModel] = {}
        self._graphs: dict[
            str, tuple[onnx_models.Graph, str]
        ] = {}  # a user's ONNX file, read and hashed once
        self._npz: dict[tuple[str, str, int | None], datasets.Samples] = {}  # (file, model, hw) -> loaded
        self._fp32: dict[tuple[Any, ...], Fp32Outputs] = {}
        # a detector's fp32 detections, decoded once per (model, resolution, weights) for every case
        self.fp32_detections: dict[tuple[Any, ...], Fp32Detections] = {}
        self._engine: tuple[tuple[Any, ...], Engine] | None = None
        self._failed: dict[tuple[Any, ...], BuildFailed | BuiltNotRunnable] = {}
        # Bounded: a segmentation reference at 512 px is ~350 MB; matrix order keeps reuse local.
        self._references: OrderedDict[tuple[Any, ...], reference.Reference] = OrderedDict()
        self.weight_failures: dict[str, str] = {}  # model -> why --trt-weights auto fell back to random
        self.data = datasets.DataConfig(
            settings.dataset, settings.samples, settings.calib_samples, settings.seed
        )
        self.on_jetson = jetson.board() is not None
        self.warmup: Warmup | None = None  # background CUDA start-up (set by the plugin on a GPU)
        self.timeline = wall.Timeline()  # where this process's wall time goes
        self.saved = result_files.Saved()  # where the result files went
        self.progress: progress.Progress | None = None  # set when the cases are collected
        self.isolation: Isolation | None = None  # the timing workers (--trt-isolate), set at collection end
        self.timed_ids: list[str] = []  # the cases timed so far, in order
        self.sentinel: Sentinel | None = None  # the first timed case, timed again at the end

    # -- models and artifacts ------------------------------------------------------------------
    def weights(self, name: str) -> str:
        """Where the model's weights come from, as every result records it."""
        spec = zoo.get(name)
        if spec.is_onnx:
            source = f"onnx-file:{Path(str(spec.onnx_path)).name}@{self._user_graph(name)[1][:12]}"
            return source if spec.trained else f"random({source})"  # register_model(trained=False)
        return self.model(name)[1]

    def _user_graph(self, name: str) -> tuple[onnx_models.Graph, str]:
        """A user's ONNX file and its content hash (graph and external data), computed once."""
        if name not in self._graphs:
            graph = onnx_models.read_graph(str(zoo.get(name).onnx_path))
            self._graphs[name] = (graph, onnx_models.content_sha256(graph))
        return self._graphs[name]

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
        spec = zoo.get(case.model)
        if spec.is_onnx:
            static = case.batch if case.profile == "static" else None
            okey: tuple[Any, ...] = (case.model, static)
            if okey not in self._onnx:
                graph, sha = self._user_graph(case.model)
                self._onnx[okey] = onnx_models.prepared(self.cache, spec, graph, sha, static)
            return self._onnx[okey]
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
        n = self.eval_count(case)
        return self._samples(
            case, self.settings.inputs_npz, "--trt-inputs", n, self.data.seed, datasets.eval_samples,
            dataclasses.replace(self.data, eval_samples=n),
        )  # fmt: skip

    def eval_count(self, case: Case) -> int:
        """Evaluation samples for ``case``: ``--trt-samples``, except that a dense per-pixel model gets as
        many images as hold :data:`DENSE_EVAL_PIXELS` pixels (at least :data:`DENSE_EVAL_MIN`) unless
        the user set the count.  The metrics of 64 DeepLabV3 outputs at 320 px (137 M values) took 27-34 s
        per case on an H200 machine's host, and at 960 px they would be 1.2 G values; the agreement and
        error gates count pixels and values, of which 16 images at 320 px hold 1.6 M and 34 M."""
        n = self.data.eval_samples
        if "samples" in self.settings.explicit or zoo.get(case.model).task != "segmentation" or not case.hw:
            return n
        return min(n, max(DENSE_EVAL_MIN, DENSE_EVAL_PIXELS // (case.hw * case.hw)))

    def calibration(self, case: Case) -> datasets.Samples:
        return self._samples(
            case, self.settings.calib_npz, "--trt-calib-inputs", self.data.calib_samples,
            self.data.seed + 10_007, datasets.calibration_samples,
        )  # fmt: skip

    def _samples(
        self,
        case: Case,
        npz: str | None,
        what: str,
        n: int,
        seed: int,
        first_input: Callable[..., datasets.Samples],
        data: datasets.DataConfig | None = None,
    ) -> datasets.Samples:
        """The user's .npz when given; else the model's own data for its first (real-valued) input and
        seeded synthetic values for the rest; all synthetic for a user's graph or integer inputs."""
        spec = zoo.get(case.model)
        shapes = spec.sample_shapes(case.hw)
        if npz:
            key = (npz, case.model, case.hw)
            if key not in self._npz:  # checked at collection, used again by the baseline
                # Axes a profile leaves open (dynamic resolution, a user's min..max range) may take any size.
                dynamic = [
                    [ax for ax, _ in i.ranges] + (list(i.size_axes) if i.hw_range else [])
                    for i in spec.inputs
                ]
                self._npz[key] = user_data.load_inputs(npz, spec.inputs, shapes, what, dynamic)
            return self._npz[key]
        if spec.is_onnx or not spec.input.is_float:
            return datasets.synthetic_inputs(spec.inputs, shapes, n, seed)
        first = first_input(data or self.data, shapes[0], spec.data, spec.input.vocab)
        return datasets.complete(first, spec.inputs, shapes, seed)

    def reference(self, case: Case, req: Request, engine: Engine, gate_class: str) -> reference.Reference:
        """The same-recipe reference for ``case`` (computed once per model, resolution and recipe)."""
        recipe = engine.info.recipe
        int8 = gate_class == "int8"  # its reference is a graph: per recipe and exported batch profile
        # Without a module, fp16/bf16 references are graphs too, exact only for an engine built from that
        # very graph (onnxruntime's converted graph, not OpenVINO's precision hint on the fp32 one).
        per_recipe = int8 or (gate_class in ("fp16", "bf16") and zoo.get(case.model).is_onnx)
        key: tuple[Any, ...] = (case.model, case.hw, gate_class, recipe.name if per_recipe else None)
        if int8:
            key += (case.profile, case.batch if case.profile == "static" else None)
        if key in self._references:
            self._references.move_to_end(key)
            return self._references[key]
        dev = self.settings.device
        spec = zoo.get(case.model)
        kind = reference.describe(gate_class, dev.torch, spec.is_onnx)
        base = self.fp32_outputs(case)
        s = self.settings
        try:
            if gate_class == "fp32":
                ref = reference.Reference(base.kind, base.outputs)
            elif gate_class == "tf32" and not dev.is_cuda:
                ref = reference.unavailable(kind, "TF32 exists only on CUDA devices")
            elif gate_class == "tf32" and spec.is_onnx:
                ref = reference.unavailable(
                    kind, "a TF32 reference needs a PyTorch module; this model is an ONNX file"
                )
            elif gate_class == "int8" or (gate_class in ("fp16", "bf16") and spec.is_onnx):
                # The recipe's graph run unfused (without a module, fp16/bf16 are judged this way too).
                ref_recipe, exact = reference.own_graph(
                    recipe, lambda: graph_recipe(gate_class, s.calib_method, s.recipe_tool)
                )
                # the samples the engine's graph was made with: AutoCast's graph depends on them too
                calib = self.calibration(case) if graph_takes_samples(ref_recipe, spec) else None
                graph = apply_graph_recipe(self.cache, self.onnx(case, req), ref_recipe, calib)
                out = graph_outputs(graph.path, base.samples.arrays, layout=spec)
                ref = reference.Reference(f"{kind}: {ref_recipe.name}", out, exact=exact)
            elif gate_class in ("tf32", "fp16", "bf16"):
                module, _ = self.model(case.model)
                out = reference.torch_outputs(module, base.samples.arrays, dev.torch, gate_class)
                ref = reference.Reference(kind, out)
            else:
                ref = reference.unavailable(kind, f"no reference is defined for {gate_class}")
        except Exception as exc:  # a reference that cannot be computed is said in the result
            ref = reference.unavailable(kind, f"{type(exc).__name__}: {str(exc)[:300]}")
        self._references[key] = ref
        while (
            len(self._references) > 1
            and sum(
                sum(o.nbytes for o in r.outputs) for r in self._references.values() if r.outputs is not None
            )
            > REFERENCE_CACHE_BYTES
        ):
            self._references.popitem(last=False)  # least recently used first
        return ref

    def fp32_outputs(self, case: Case) -> Fp32Outputs:
        """fp32 outputs on the evaluation samples, computed twice to expose baseline noise: PyTorch's
        strict fp32, or ONNX Runtime's unfused CPU run for a model that is only an ONNX file; the
        user's trusted outputs (``--trt-reference-outputs``) replace them when given."""
        key = (case.model, case.hw)
        if key in self._fp32:
            return self._fp32[key]
        spec = zoo.get(case.model)
        samples = self.eval_samples(case)
        if spec.is_onnx:
            kind = reference.describe("fp32", "cpu", onnx_only=True)
            path = Path(str(spec.onnx_path))
            t0 = time.perf_counter()
            first = graph_outputs(path, samples.arrays, layout=spec)
            seconds = time.perf_counter() - t0
            second = graph_outputs(path, samples.arrays, layout=spec)
            names = list(spec.output_names)
        else:
            kind = "strict fp32 baseline (PyTorch)"
            first, second, seconds = self._torch_fp32(case, samples)
            names = list(spec.output_names) or (
                [spec.output_name] if len(first) == 1 else [f"output_{i}" for i in range(len(first))]
            )
        noise = {
            "deterministic": all(np.array_equal(a, b) for a, b in zip(first, second, strict=True)),
            "max_abs_diff": max(
                float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(first, second, strict=True)
            ),
            "closeness": metrics.closeness(first[0], second[0]),
        }
        if self.settings.reference_outputs:
            trusted = user_data.load_outputs(self.settings.reference_outputs, names, first)
            noise["fp32_vs_user_reference"] = {
                n: metrics.rel_l2(a, t, t) for n, a, t in zip(names, first, trusted, strict=True)
            }
            kind = f"user reference outputs ({Path(self.settings.reference_outputs).name})"
            first = trusted
        b = Fp32Outputs(samples, first, seconds, noise, names, kind)
        self._fp32[key] = b
        return b

    def _torch_fp32(
        self, case: Case, samples: datasets.Samples
    ) -> tuple[list[np.ndarray], list[np.ndarray], float]:
        module, _ = self.model(case.model)
        dev = self.settings.device.torch
        prev = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # strict fp32
        try:
            m = module.to(dev)
            t0 = time.perf_counter()
            first = _forward(m, samples.arrays, dev)
            seconds = time.perf_counter() - t0
            second = _forward(m, samples.arrays, dev)
            module.to("cpu")
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev
        return first, second, seconds

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
        model_spec = zoo.get(case.model)
        if model_spec.batch_range is not None:  # the user's own min/max shapes set the batch profile
            spec = dataclasses.replace(spec, batch_range=model_spec.batch_range)
        if model_spec.prune is not None:
            spec = dataclasses.replace(spec, sparse_weights=True)
        backend = backends.get(case.backend)
        try:
            # An export that fails is this configuration's result too (the exporter's words in the log).
            onnx_model = self.onnx(case, req) if backend.consumes_onnx else None
            ctx = BuildContext(
                cache=self.cache,
                spec=spec,
                model_spec=model_spec,
                onnx=onnx_model,  # type: ignore[arg-type]  # the torch backends never read it
                device=settings.device,
                torch_model=lambda: _fresh_copy(self.model(case.model)[0]),
                calibration=lambda: self.calibration(case),
                verbose=self.verbose,
            )
            eng = batch_first(backend.build(ctx), model_spec)
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
        if self.warmup is not None:
            self.warmup.wait()  # whatever follows may time: the background start-up must be over
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
def _forward(module: nn.Module, xs: tuple[np.ndarray, ...], device: str, chunk: int = 16) -> list[np.ndarray]:
    outs = []
    for i in range(0, len(xs[0]), chunk):
        y = module(*(torch.from_numpy(a[i : i + chunk]).to(device) for a in xs))
        outs.append(
            [
                t.float().cpu().numpy() if t.is_floating_point() else t.cpu().numpy()
                for t in reference.as_list(y)
            ]
        )
    return reference.stack(outs)


def engine_outputs(engine: Engine, samples: datasets.Samples, batch: int, static: bool) -> list[np.ndarray]:
    """Run every sample through the engine, ``batch`` at a time (the last chunk padded for static
    engines); one array per output."""
    outs = []
    for i in range(0, len(samples), batch):
        n = min(batch, len(samples) - i)
        outs.append([o[:n] for o in engine.run(samples.take(i, i + batch, batch if static else None))])
    return reference.stack(outs)
