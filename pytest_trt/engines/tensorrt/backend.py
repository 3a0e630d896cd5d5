"""TensorRT backend for 8.6, 10.x and 11.x (and, experimentally, TensorRT for RTX).

Building and running are separate: :func:`build_plan` turns an ONNX file and a :class:`BuildSpec`
into a serialized plan (cached by a key holding the ONNX hash, recipe, every builder setting, the
TensorRT version and the GPU), and :class:`TrtEngine` deserializes a plan and runs it with the
name-based I/O API (``set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3``) on a
non-default stream, with torch CUDA tensors as buffers.

Version differences are gated with ``hasattr``/``getattr`` on the imported module, never with enum
integers: 11.x removed the FP16/INT8/BF16 builder flags, calibrators, ``device_memory_size`` and
more.  The module ``trt`` is bound at first use so the plugin imports without TensorRT; tests bind
a recording double instead.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_trt.cache import ArtifactCache, atomic_write_bytes, atomic_write_text
from pytest_trt.engines.protocol import (
    Availability,
    Backend,
    BuildContext,
    BuildFailed,
    BuildSpec,
    BuiltNotRunnable,
    Device,
    EngineInfo,
    Feed,
    Unsupported,
)
from pytest_trt.engines.recipes import Recipe, RecipeUnavailable, apply_graph_recipe, graph_recipe
from pytest_trt.engines.torch_io import TorchFeed, TorchIOEngine
from pytest_trt.models.datasets import Samples
from pytest_trt.models.zoo import ModelSpec

if TYPE_CHECKING:
    import tensorrt as trt
else:
    trt = None  # bound by load_tensorrt()

_LOAD_LOCK = threading.Lock()


class TensorRTUnavailable(ImportError):
    pass


def load_tensorrt(module_name: str = "tensorrt") -> Any:
    """Import TensorRT and bind it for this module; raise TensorRTUnavailable with the reason.

    A successful ``import tensorrt`` is not proof: the ``tensorrt-stubs`` package installed with
    ``--no-deps`` (or NVIDIA's pip shim without its libraries) imports as an empty namespace.
    """
    global trt
    with _LOAD_LOCK:
        if trt is not None and getattr(trt, "__name__", "") == module_name:
            return trt
        try:
            mod = importlib.import_module(module_name)
        except ImportError as exc:  # includes a wheel whose libnvinfer.so is missing
            raise TensorRTUnavailable(f"`import {module_name}` failed: {exc}") from exc
        if not hasattr(mod, "__version__") or not hasattr(mod, "Builder"):
            where = getattr(mod, "__path__", None) or getattr(mod, "__file__", "?")
            raise TensorRTUnavailable(
                f"`{module_name}` at {where} has no __version__/Builder (stubs or a pip shim without "
                "NVIDIA's libraries?); install TensorRT (pip install 'pytest-trt[tensorrt]' or JetPack)"
            )
        trt = mod
        return mod


def version_tuple(version: str) -> tuple[int, int]:
    parts = ([*version.split("."), "0"])[:2]
    return int(parts[0]), int(parts[1])


def family(version: str) -> str:
    """'8.6', '10' or '11' (anything newer behaves like 11: strongly typed only)."""
    major, minor = version_tuple(version)
    if major < 10:
        return f"{major}.{minor}"
    return "10" if major == 10 else "11"


def _flag(name: str) -> Any:
    return getattr(trt.BuilderFlag, name, None)


def _is_strong_only() -> bool:
    # 11.x: weak typing is gone, and with it the precision flags.
    return _flag("FP16") is None and _flag("INT8") is None


def choose_recipe(spec: BuildSpec, version: str) -> Recipe:
    """The precision recipe for ``spec`` on this TensorRT (module must be bound)."""
    fam = family(version)
    strong_only = _is_strong_only()
    typing = spec.typing
    if typing == "auto":
        typing = "strong" if strong_only else "weak"
    if typing == "weak" and strong_only:
        raise Unsupported(
            f"TensorRT {version} removed weak typing (builder precision flags); use --trt-typing strong"
        )
    if (
        typing == "strong"
        and not hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
        and not strong_only
    ):
        raise Unsupported(
            f"TensorRT {version} has no strongly typed networks (added in 9.0); use --trt-typing weak"
        )
    if typing == "strong":
        try:
            # TensorRT's parser takes only 8-bit (or narrower) DequantizeLinear inputs: biases stay float.
            base = graph_recipe(spec.precision, spec.calib_method, spec.recipe_tool, float_bias=True)
        except RecipeUnavailable as exc:
            raise Unsupported(f"tensorrt {spec.precision} (strongly typed): {exc}") from exc
        return Recipe(
            base.precision,
            f"trt{fam}-strong-{base.name}",
            graph=base.graph,
            tool=base.tool,
            strongly_typed=True,
            tf32=spec.tf32,
            calib_method=base.calib_method,
            details=base.details,
        )
    flags = {"fp32": (), "fp16": ("FP16",), "bf16": ("BF16",), "int8": ("INT8",)}[spec.precision]
    for f in flags:
        if _flag(f) is None:
            raise Unsupported(f"TensorRT {version} has no BuilderFlag.{f}")
    return Recipe(
        spec.precision,
        f"trt{fam}-weak-{spec.precision}" + ("" if spec.tf32 else "-notf32"),
        builder_flags=flags,
        tf32=spec.tf32,
        calibrator="IInt8EntropyCalibrator2" if spec.precision == "int8" else None,
        calib_method="entropy" if spec.precision == "int8" else None,
    )


@dataclass(frozen=True)
class GpuIdentity:
    name: str
    compute_capability: str

    @staticmethod
    def of(device: Device) -> GpuIdentity:
        if not device.is_cuda:
            return GpuIdentity("cpu", "none")
        import torch

        p = torch.cuda.get_device_properties(device.index)
        return GpuIdentity(p.name, f"{p.major}.{p.minor}")


def make_logger(severity: str = "WARNING") -> Any:
    """An ILogger that keeps every record (the logger must outlive builders and runtimes)."""

    class CapturingLogger(trt.ILogger):  # type: ignore[misc,name-defined,unused-ignore]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.records: list[tuple[Any, str]] = []
            self.level = getattr(trt.ILogger.Severity, severity)
            self.lock = threading.Lock()

        def log(self, sev: Any, msg: str) -> None:  # called from TensorRT's threads
            if sev <= self.level:
                with self.lock:
                    self.records.append((sev, msg))

        def errors(self) -> list[str]:
            return [m for s, m in self.records if s <= trt.ILogger.Severity.ERROR]

        def warnings(self) -> list[str]:
            return [m for s, m in self.records if s == trt.ILogger.Severity.WARNING]

    return CapturingLogger()


def make_progress_monitor(label: str, quiet: bool) -> Any:
    """Per-phase lines on stderr through IProgressMonitor (TensorRT 9+); None where it does not exist."""
    if quiet or not hasattr(trt, "IProgressMonitor"):
        return None

    class PhaseLines(trt.IProgressMonitor):  # type: ignore[misc,name-defined,unused-ignore]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.t0: dict[str, float] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self.t0[phase_name] = time.perf_counter()
            if parent_phase is None:
                sys.stderr.write(f"[pytest-trt] {label}: {phase_name} ({num_steps} steps)\n")

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True

        def phase_finish(self, phase_name: str) -> None:
            dt = time.perf_counter() - self.t0.pop(phase_name, time.perf_counter())
            if dt > 1.0:
                sys.stderr.write(f"[pytest-trt] {label}: {phase_name} done in {dt:.1f} s\n")

    return PhaseLines()


def _entropy_calibrator(samples: Samples, batch: int, cache_path: Path, input_names: list[str]) -> Any:
    """Implicit-int8 calibrator (8.6 / 10.x only) feeding CUDA tensors, with a calibration cache."""
    import torch

    base: Any = getattr(trt, "IInt8EntropyCalibrator2", None)
    if base is None:  # removed with weak typing in 11.x
        raise Unsupported(
            f"TensorRT {trt.__version__} has no implicit int8 calibrators; use --trt-typing strong"
        )

    class Calib(base):  # type: ignore[misc,valid-type,unused-ignore]
        def __init__(self) -> None:
            base.__init__(self)
            self.batches = [samples.take(i, i + batch) for i in range(0, len(samples) - batch + 1, batch)]
            self.i = 0
            self.keep: Any = None

        def get_batch_size(self) -> int:
            return batch

        # The stubs say list[int]; TensorRT documents None (or []) as "no more data".
        def get_batch(self, names: list[str]) -> list[int] | None:  # base is Any: no override check
            if self.i >= len(self.batches):
                return None
            by_name = dict(zip(input_names, self.batches[self.i], strict=True))
            self.keep = [torch.from_numpy(np.ascontiguousarray(by_name[n])).cuda() for n in names]
            self.i += 1
            return [int(t.data_ptr()) for t in self.keep]

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.exists() else None

        def write_calibration_cache(self, cache: Any) -> None:
            atomic_write_bytes(cache_path, bytes(cache))

    return Calib()


def _shape_triplet(name: str, dims: Any, spec: BuildSpec, model: ModelSpec) -> tuple[tuple[int, ...], ...]:
    """min/opt/max shapes for the network input ``name``, whose build-time dims may hold -1: the
    declared input of that name gives the profile, the network's fixed dims win."""
    inp = next((i for i in model.inputs if i.name == name), model.input)
    declared = inp.triplet(spec.build_batches, spec.hw, spec.hw_range)
    if len(declared[0]) != len(dims):
        raise BuildFailed(
            f"network input {name!r} has rank {len(dims)}; {model.name} declares rank {len(declared[0])}"
        )
    return tuple(tuple(int(d) if d >= 0 else s[axis] for axis, d in enumerate(dims)) for s in declared)


_HW_COMPAT = {
    "ampere_plus": "AMPERE_PLUS",
    "same_compute_capability": "SAME_COMPUTE_CAPABILITY",
    "none": "NONE",
}


def configure_builder(
    builder: Any, network: Any, spec: BuildSpec, recipe: Recipe, model: ModelSpec
) -> tuple[Any, Any]:
    """Create and fill the IBuilderConfig for ``spec``; returns (config, profile or None)."""
    config = builder.create_builder_config()
    if spec.workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.workspace_mb << 20)
    config.builder_optimization_level = spec.opt_level  # 8.6+; every supported version has it
    if spec.avg_timing_iterations is not None:
        config.avg_timing_iterations = spec.avg_timing_iterations
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the inspector's layer list needs it
    if spec.max_aux_streams is not None:
        config.max_aux_streams = spec.max_aux_streams
    if spec.hardware_compat and spec.hardware_compat != "none":
        level = getattr(trt.HardwareCompatibilityLevel, _HW_COMPAT[spec.hardware_compat], None)
        if level is None:
            raise Unsupported(
                f"this TensorRT has no HardwareCompatibilityLevel.{_HW_COMPAT[spec.hardware_compat]}"
            )
        config.hardware_compatibility_level = level
    ccs: Any = getattr(trt, "ComputeCapability", None)  # TensorRT-RTX only
    if spec.compute_capability and ccs is not None and hasattr(config, "num_compute_capabilities"):
        # TensorRT-RTX compiles for named GPU architectures, so it can build without a GPU present.
        name = (
            "CURRENT"
            if spec.compute_capability == "current"
            else "SM" + spec.compute_capability.replace(".", "")
        )
        target = getattr(ccs, name, None)
        if target is None or not hasattr(config, "set_compute_capability"):
            known = [n for n in dir(ccs) if n.startswith("SM") or n == "CURRENT"]
            raise Unsupported(
                f"{trt.__name__} {trt.__version__} cannot build for compute capability "
                f"{spec.compute_capability}; it knows {', '.join(known)} (--trt-compute-capability)"
            )
        config.num_compute_capabilities = 1
        config.set_compute_capability(target, 0)
    if spec.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if not spec.tf32 and _flag("TF32") is not None:
        config.clear_flag(trt.BuilderFlag.TF32)
    for f in recipe.builder_flags:  # weakly typed recipes only; never combined with strong typing
        config.set_flag(getattr(trt.BuilderFlag, f))
    if spec.sparse_weights:  # 2:4-pruned weights: let the builder time its sparse kernels too
        config.set_flag(trt.BuilderFlag.SPARSE_WEIGHTS)
    profile = None
    dynamic = [
        network.get_input(i)
        for i in range(network.num_inputs)
        if any(d < 0 for d in network.get_input(i).shape)
    ]
    if dynamic:
        profile = builder.create_optimization_profile()
        for inp in dynamic:
            lo, opt, hi = _shape_triplet(inp.name, inp.shape, spec, model)
            profile.set_shape(inp.name, lo, opt, hi)
        if config.add_optimization_profile(profile) < 0:
            raise BuildFailed(f"TensorRT rejected the optimization profile {lo} / {opt} / {hi}")
    return config, profile


def network_flags(recipe: Recipe) -> int:
    ndcf = trt.NetworkDefinitionCreationFlag
    flags = 0
    explicit = getattr(ndcf, "EXPLICIT_BATCH", None)
    if explicit is not None and version_tuple(trt.__version__)[0] < 10:
        flags |= 1 << int(explicit)  # 8.6: the ONNX parser needs explicit batch
    strong = getattr(ndcf, "STRONGLY_TYPED", None)
    if recipe.strongly_typed and strong is not None and version_tuple(trt.__version__)[0] == 10:
        flags |= 1 << int(strong)  # 10.x opt-in; 11.x is always strongly typed (flag ignored)
    return flags


def parse_onnx(builder: Any, logger: Any, onnx_path: Path, recipe: Recipe) -> Any:
    network = builder.create_network(network_flags(recipe))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        msgs = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BuildFailed(
            f"TensorRT could not parse {onnx_path.name}: " + ("; ".join(msgs) or "no parser message"),
            msgs + logger.errors(),
        )
    return network, parser


def build_plan(
    onnx_path: Path,
    out: Path,
    spec: BuildSpec,
    recipe: Recipe,
    model: ModelSpec,
    *,
    cache: ArtifactCache | None,
    timing_cache_key: dict[str, Any] | None,
    calibration: Samples | None,
    calib_cache_path: Path | None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Build a serialized plan for ``onnx_path`` into ``out``; return facts for the sidecar."""
    # TensorRT reports which layers were eligible for, and got, sparse kernels at INFO level only
    logger = make_logger("INFO" if spec.sparse_weights else "WARNING")
    builder = trt.Builder(logger)
    network, _parser = parse_onnx(builder, logger, onnx_path, recipe)
    try:
        config, profile = configure_builder(builder, network, spec, recipe, model)
    except BuildFailed as exc:  # the builder's own words say why (e.g. min > max in a profile)
        errors = logger.errors()
        raise BuildFailed(f"{exc}: " + ("; ".join(errors[-3:]) or "no error logged"), errors) from exc
    if recipe.calibrator:
        if calibration is None or calib_cache_path is None:
            raise BuildFailed("int8 (implicit) needs calibration samples")
        if not hasattr(config, "int8_calibrator"):
            raise Unsupported(f"TensorRT {trt.__version__} has no int8 calibrator; use --trt-typing strong")
        names = [network.get_input(i).name for i in range(network.num_inputs)]
        config.int8_calibrator = _entropy_calibrator(
            calibration, spec.build_batches[1], calib_cache_path, names
        )
        if profile is not None and hasattr(config, "set_calibration_profile"):
            config.set_calibration_profile(profile)
    monitor = make_progress_monitor(f"{model.name} {recipe.name}", quiet)
    if monitor is not None and hasattr(config, "progress_monitor"):
        config.progress_monitor = monitor
    timing_path = None
    if spec.timing_cache and cache is not None and timing_cache_key is not None:
        timing_path = cache.path_for("trt-timing", _derived_key("trt-timing", timing_cache_key), ".cache")
        blob = timing_path.read_bytes() if timing_path.exists() else b""
        tcache = config.create_timing_cache(blob)
        config.set_timing_cache(tcache, ignore_mismatch=False)
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    if plan is None:
        errors = logger.errors()
        oom = any("out of memory" in e.lower() or "insufficient memory" in e.lower() for e in errors)
        raise BuildFailed(
            f"TensorRT build failed for {model.name} {recipe.name} opt{spec.opt_level}: "
            + ("; ".join(errors[-5:]) or "no error logged"),
            errors,
            oom=oom,
        )
    with open(out, "wb") as f:
        f.write(plan)
    if timing_path is not None and cache is not None:
        with cache.lock(timing_path):
            atomic_write_bytes(timing_path, bytes(config.get_timing_cache().serialize()))
    return {
        "trt_version": trt.__version__,
        "build_seconds_trt": seconds,
        "build_warnings": logger.warnings()[-50:],
        "network_layers": network.num_layers,
        "sparsity_log": [m for _, m in logger.records if "spars" in m.lower()][-10:]
        if spec.sparse_weights
        else [],
    }


def _derived_key(kind: str, parts: dict[str, Any]) -> str:
    """Key of a cache file TensorRT writes itself (timing cache, calibration cache)."""
    from pytest_trt.cache import content_key

    return content_key({"kind": kind, **parts})


class TrtEngine(TorchIOEngine):
    """A deserialized plan and one execution context, run with the name-based I/O API."""

    def __init__(
        self, engine: Any, device: Device, info: EngineInfo, logger: Any, input_order: Sequence[str] = ()
    ) -> None:
        super().__init__(device)
        import torch

        self.logger = logger  # must outlive the engine
        self.engine = engine
        self.info = info
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        # Feeds are positional in the ONNX graph's input order; the engine's own order is not promised.
        self.inputs = [n for n in input_order if n in inputs] + [n for n in inputs if n not in input_order]
        self.outputs_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.t2t = {
            trt.float32: torch.float32,
            trt.float16: torch.float16,
            trt.int8: torch.int8,
            trt.int32: torch.int32,
            trt.bool: torch.bool,
            trt.uint8: torch.uint8,
        }
        for a in ("bfloat16", "int64"):  # 10.0+
            if hasattr(trt, a):
                self.t2t[getattr(trt, a)] = getattr(torch, a)
        self.input_dtype = self.t2t[engine.get_tensor_dtype(self.inputs[0])]
        self._bound: tuple[tuple[int, tuple[int, ...]], ...] | None = None
        self._out: dict[str, Any] = {}
        self._graph: Any = None
        self._graph_feed: TorchFeed | None = None

    def feed_dtype(self, index: int, host: Any) -> Any:
        """Each input is fed as the engine declares it (8.6 turns int64 inputs into int32)."""
        return self.t2t[self.engine.get_tensor_dtype(self.inputs[index])]

    def _bind(self, feed: TorchFeed) -> None:
        import torch

        key = tuple((d.data_ptr(), tuple(d.shape)) for d in feed.devs)
        if self._bound == key:
            return
        if len(feed.devs) != len(self.inputs):
            raise RuntimeError(
                f"the engine takes {len(self.inputs)} inputs ({self.inputs}); {len(feed.devs)} fed"
            )
        for name, dev in zip(self.inputs, feed.devs, strict=True):
            if not self.context.set_input_shape(name, tuple(dev.shape)):
                raise RuntimeError(
                    f"input shape {tuple(dev.shape)} is outside the engine's profile for {name!r}"
                )
            if not self.context.set_tensor_address(name, dev.data_ptr()):
                raise RuntimeError(f"set_tensor_address failed for input {name!r}")
        missing = self.context.infer_shapes()
        if missing:
            raise RuntimeError(f"TensorRT inputs not specified: {missing}")
        self._out = {}
        for n in self.outputs_names:
            t = torch.empty(
                tuple(self.context.get_tensor_shape(n)),
                dtype=self.t2t[self.engine.get_tensor_dtype(n)],
                device=self.device.torch,
            )
            self.context.set_tensor_address(n, t.data_ptr())
            self._out[n] = t
        self._bound = key

    def infer(self, feed: Feed) -> Any:
        assert isinstance(feed, TorchFeed) and self._stream is not None
        if self._graph is not None and feed is self._graph_feed:
            with self.on_stream():
                self._graph.replay()
            return self._out
        self._bind(feed)
        if not self.context.execute_async_v3(self._stream.cuda_stream):
            raise RuntimeError("execute_async_v3 failed: " + "; ".join(self.logger.errors()[-3:]))
        return self._out

    def capture_graph(self, feed: Feed) -> bool:
        import torch

        assert isinstance(feed, TorchFeed) and self._stream is not None
        self.infer(feed)  # one untimed enqueue first, so initialisation is not captured
        self.sync()
        g = torch.cuda.CUDAGraph()
        ok = False
        try:
            with torch.cuda.graph(g, stream=self._stream):
                ok = bool(self.context.execute_async_v3(self._stream.cuda_stream))
        except RuntimeError as exc:
            self.info.warnings.append(f"CUDA graph capture refused: {exc}")
            ok = False
        if not ok:
            self.info.warnings.append("CUDA graph capture not possible for this engine; running without")
            return False
        self._graph, self._graph_feed = g, feed
        self.info.cuda_graph = True
        return True

    def close(self) -> None:
        self._graph = None
        self.context = None
        self.engine = None


def engine_facts(engine: Any, layers_json_path: Path | None) -> dict[str, Any]:
    """Layer count, device memory and (DETAILED builds) the inspector's layer list and weight count."""
    facts: dict[str, Any] = {"layers": engine.num_layers}
    if hasattr(engine, "device_memory_size_v2"):
        facts["device_memory_bytes"] = int(engine.device_memory_size_v2)
    elif hasattr(engine, "device_memory_size"):
        facts["device_memory_bytes"] = int(engine.device_memory_size)
    facts["num_optimization_profiles"] = getattr(engine, "num_optimization_profiles", None)
    try:
        insp = engine.create_engine_inspector()
        info = json.loads(insp.get_engine_information(trt.LayerInformationFormat.JSON))
    except Exception as exc:  # inspector output is diagnostic; its absence must not fail a run
        facts["inspector_error"] = str(exc)
        return facts
    layers = info.get("Layers", [])
    weights = 0
    for layer in layers:
        if isinstance(layer, dict):
            for k in ("Weights", "Bias"):
                v = layer.get(k)
                if isinstance(v, dict):
                    weights += int(v.get("Count", 0) or 0)
    facts["inspector_layers"] = len(layers)
    facts["engine_params"] = weights or None
    if layers_json_path is not None:
        atomic_write_text(layers_json_path, json.dumps(info, indent=1))
        facts["layers_json"] = str(layers_json_path)
    return facts


class TensorRTBackend(Backend):
    name = "tensorrt"
    module_name = "tensorrt"
    precisions = ("fp32", "fp16", "bf16", "int8")
    uses_opt_level = True
    builds_without_gpu = False  # TensorRT needs the GPU it builds for; TensorRT-RTX targets named ones

    def _load(self) -> Any:
        return load_tensorrt(self.module_name)

    def availability(self) -> Availability:
        try:
            mod = self._load()
        except TensorRTUnavailable as exc:
            return Availability(False, reason=str(exc))
        return Availability(True, mod.__version__)

    def unsupported(self, spec: BuildSpec, model: ModelSpec, device: Device) -> str | None:
        a = self.availability()
        if not a.ok:
            return f"{self.name} unavailable: {a.reason}"
        if not device.is_cuda and not self.builds_without_gpu:
            return f"{self.name} needs a CUDA GPU (device is {device.torch})"
        if spec.version_compatible and not spec.allow_host_code:
            return (
                "version-compatible plans embed the lean runtime (host code) and are refused unless you opt in "
                "with --trt-allow-host-code"
            )
        try:
            self.recipe(spec)
        except Unsupported as exc:
            return str(exc)
        return super().unsupported(spec, model, device)

    def recipe(self, spec: BuildSpec) -> Recipe:
        mod = self._load()
        return choose_recipe(spec, mod.__version__)

    def plan_key(self, ctx: BuildContext, recipe: Recipe, onnx_sha: str, gpu: GpuIdentity) -> dict[str, Any]:
        from pytest_trt.hardware import jetson

        return {
            "onnx": onnx_sha,
            "recipe": recipe.as_dict(),
            "build": ctx.spec.key(),
            "model": ctx.model_spec.name,
            "trt_version": trt.__version__,
            "gpu": gpu.name,
            "compute_capability": gpu.compute_capability,
            # TensorRT tunes to the clocks it sees: on Jetson a power mode is a different target.
            "power_mode": jetson.power_mode_key(),
        }

    def build(self, ctx: BuildContext) -> TrtEngine:
        self._load()
        recipe = self.recipe(ctx.spec)
        gpu = GpuIdentity.of(ctx.device)
        calib = ctx.calibration() if (recipe.graph == "qdq-int8" or recipe.calibrator) else None
        t0 = time.perf_counter()
        model = (
            apply_graph_recipe(ctx.cache, ctx.onnx, recipe, calib)
            if recipe.graph != "as-exported"
            else ctx.onnx
        )
        recipe_seconds = time.perf_counter() - t0
        key = self.plan_key(ctx, recipe, model.sha256, gpu)
        calib_path = None
        if recipe.calibrator:
            assert calib is not None
            calib_path = ctx.cache.path_for(
                "trt-calib",
                _derived_key("trt-calib", {"calib": calib.digest(), **key, "build": None}),
                ".cache",
            )
        timing_key = {"trt_version": trt.__version__, "gpu": gpu.name, "cc": gpu.compute_capability}

        def build(tmp: Path) -> dict[str, Any]:
            return build_plan(
                model.path,
                tmp,
                ctx.spec,
                recipe,
                ctx.model_spec,
                cache=ctx.cache,
                timing_cache_key=timing_key,
                calibration=calib,
                calib_cache_path=calib_path,
                quiet=ctx.verbose < 0,
            )

        art = ctx.cache.get_or_build("trt-plan", key, ".plan", build)
        if art.meta.get("trt_version") != trt.__version__:  # defence in depth: never load a foreign plan
            raise BuildFailed(f"cached plan {art.path} was built by TensorRT {art.meta.get('trt_version')}")
        info = EngineInfo(
            backend=self.name,
            backend_version=trt.__version__,
            recipe=recipe,
            build_seconds=float(art.meta.get("build_seconds_trt", art.build_seconds)),
            cached=not art.built,
            plan_bytes=art.size,
            layers=art.meta.get("network_layers"),
            warnings=list(art.meta.get("build_warnings", [])),
            extra={
                "recipe_seconds": round(recipe_seconds, 4),
                "gpu": gpu.name,
                # the GPU's own, or the architecture an ahead-of-time (RTX) build targeted
                "compute_capability": gpu.compute_capability
                if ctx.device.is_cuda
                else ctx.spec.compute_capability,
                "trt_family": family(trt.__version__),
                "plan_key": art.key[:16],
                "runnable": ctx.device.is_cuda,
                "sparse_weights": ctx.spec.sparse_weights,
                "sparsity_log": art.meta.get("sparsity_log") or None,
            },
        )
        if not ctx.device.is_cuda:
            raise BuiltNotRunnable(
                f"built for compute capability {ctx.spec.compute_capability} "
                f"({art.size} bytes, {info.build_seconds:.2f} s); not runnable here: no CUDA GPU",
                info,
            )
        logger = make_logger("WARNING")
        runtime = trt.Runtime(logger)
        runtime.engine_host_code_allowed = bool(ctx.spec.allow_host_code)
        engine = runtime.deserialize_cuda_engine(art.path.read_bytes())
        if engine is None:
            raise BuildFailed(
                f"TensorRT could not deserialize {art.path}: " + "; ".join(logger.errors()[-3:])
            )
        facts = engine_facts(engine, art.path.with_name(art.path.name + ".layers.json"))
        info.layers = facts.pop("layers", info.layers)
        info.device_memory_bytes = facts.pop("device_memory_bytes", None)
        info.engine_params = facts.pop("engine_params", None)
        info.extra.update(facts)
        return TrtEngine(engine, ctx.device, info, logger, ctx.onnx.input_names)


class TensorRTRTXBackend(TensorRTBackend):
    """TensorRT for RTX GPUs: the same API and the same network/profile/config code, strongly typed only.

    It compiles for named GPU architectures (``--trt-compute-capability``), so it builds real plans on a
    machine without a GPU; such cases are recorded as *built* (build time, plan size), never timed.
    """

    name = "tensorrt_rtx"
    module_name = "tensorrt_rtx"
    builds_without_gpu = True  # without a GPU: everything but running is checked, and the plan is built

    def recipe(self, spec: BuildSpec) -> Recipe:
        self._load()
        if spec.typing == "weak":
            raise Unsupported("TensorRT-RTX is strongly typed only")
        return choose_recipe(dataclasses.replace(spec, typing="strong"), trt.__version__)


def env_version() -> str | None:
    """The TensorRT version if importable, without raising (for machine_info)."""
    try:
        return str(load_tensorrt().__version__)
    except TensorRTUnavailable:
        return None
    except Exception:
        return None


__all__ = ["TensorRTBackend", "TensorRTRTXBackend", "build_plan", "choose_recipe", "load_tensorrt"]
