"""Building a plan: an ONNX file and a :class:`BuildSpec` in, a serialized plan out.

The network is parsed, the builder config filled from the spec (optimisation level, pools, flags,
hardware compatibility, TensorRT-RTX's compute capability, the dynamic profile), int8 calibrated where
the recipe is implicit, and the timing cache shared across builds.  Nothing here runs an engine.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_trt.cache import ArtifactCache, atomic_write_bytes
from pytest_trt.engines.protocol import BuildFailed, BuildSpec, Device, Unsupported
from pytest_trt.engines.recipes import Recipe
from pytest_trt.engines.tensorrt import versions
from pytest_trt.engines.tensorrt.calibrator import entropy_calibrator
from pytest_trt.engines.tensorrt.log import make_logger
from pytest_trt.models.datasets import Samples
from pytest_trt.models.zoo import ModelSpec


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


def make_progress_monitor(label: str, quiet: bool) -> Any:
    """Per-phase lines on stderr through IProgressMonitor (TensorRT 9+); None where it does not exist."""
    trt = versions.trt
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
    trt = versions.trt
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
    if not spec.tf32 and versions.flag("TF32") is not None:
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
    trt = versions.trt
    ndcf = trt.NetworkDefinitionCreationFlag
    flags = 0
    explicit = getattr(ndcf, "EXPLICIT_BATCH", None)
    if explicit is not None and versions.version_tuple(trt.__version__)[0] < 10:
        flags |= 1 << int(explicit)  # 8.6: the ONNX parser needs explicit batch
    strong = getattr(ndcf, "STRONGLY_TYPED", None)
    if recipe.strongly_typed and strong is not None and versions.version_tuple(trt.__version__)[0] == 10:
        flags |= 1 << int(strong)  # 10.x opt-in; 11.x is always strongly typed (flag ignored)
    return flags


def parse_onnx(builder: Any, logger: Any, onnx_path: Path, recipe: Recipe) -> Any:
    trt = versions.trt
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
    trt = versions.trt
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
        config.int8_calibrator = entropy_calibrator(
            calibration, spec.build_batches[1], calib_cache_path, names
        )
        if profile is not None and hasattr(config, "set_calibration_profile"):
            config.set_calibration_profile(profile)
    monitor = make_progress_monitor(f"{model.name} {recipe.name}", quiet)
    if monitor is not None and hasattr(config, "progress_monitor"):
        config.progress_monitor = monitor
    timing_path = None
    if spec.timing_cache and cache is not None and timing_cache_key is not None:
        timing_path = cache.path_for("trt-timing", derived_key("trt-timing", timing_cache_key), ".cache")
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


def derived_key(kind: str, parts: dict[str, Any]) -> str:
    """Key of a cache file TensorRT writes itself (timing cache, calibration cache)."""
    from pytest_trt.cache import content_key

    return content_key({"kind": kind, **parts})
