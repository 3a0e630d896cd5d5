"""A recording test double of the ``tensorrt`` Python module, per version family (8.6 / 10.x / 11.x).

NOT TensorRT: it builds nothing.  It exposes the names the crib sheet lists for each family (and only
those, so a removed API raises AttributeError like the real 11.x), records every call made on it, and
returns plausible objects so pytest_trt's build plumbing can be driven end to end on CPU.
"""

from __future__ import annotations

import enum
import types
from pathlib import Path
from typing import Any

import onnx


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def rec(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def find(self, name: str) -> list[tuple[Any, ...]]:
        return [a for n, a in self.calls if n == name]


class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


def make_double(version: str, *, fail_build: str | None = None, fail_parse: bool = False) -> types.ModuleType:
    """A fake ``tensorrt`` module for ``version`` (e.g. "8.6.1", "10.13.0", "11.4.0")."""
    major = int(version.split(".")[0])
    R = Recorder()
    m = types.ModuleType("tensorrt")
    m.__version__ = version  # type: ignore[attr-defined]
    m.recorder = R  # type: ignore[attr-defined]

    class ILogger:
        Severity = Severity

        def __init__(self) -> None:
            pass

    class Logger(ILogger):
        WARNING = Severity.WARNING

    m.ILogger = ILogger  # type: ignore[attr-defined]
    m.Logger = Logger  # type: ignore[attr-defined]

    ndcf: dict[str, int] = {}
    if major < 11:
        ndcf["EXPLICIT_BATCH"] = 0
    if major == 10:
        ndcf["STRONGLY_TYPED"] = 1
    if major >= 11:
        ndcf["STRONGLY_TYPED"] = 0  # enum value 0 on 11.x: never hard-code it
        ndcf["PREFER_JIT_PYTHON_PLUGINS"] = 1
    m.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", ndcf)  # type: ignore[attr-defined]

    flags = ["TF32", "VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME", "REFIT"]
    if major < 11:
        flags += ["FP16", "INT8"]
    if major == 10:
        flags += ["BF16"]
    m.BuilderFlag = enum.IntEnum("BuilderFlag", {f: i for i, f in enumerate(flags)})  # type: ignore[attr-defined]
    m.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0})  # type: ignore[attr-defined]
    m.ProfilingVerbosity = enum.IntEnum(
        "ProfilingVerbosity", {"LAYER_NAMES_ONLY": 0, "NONE": 1, "DETAILED": 2}
    )  # type: ignore[attr-defined]
    hwc = {"NONE": 0, "AMPERE_PLUS": 1}
    if major >= 10:
        hwc["SAME_COMPUTE_CAPABILITY"] = 2
    m.HardwareCompatibilityLevel = enum.IntEnum("HardwareCompatibilityLevel", hwc)  # type: ignore[attr-defined]
    m.LayerInformationFormat = enum.IntEnum("LayerInformationFormat", {"ONELINE": 0, "JSON": 1})  # type: ignore[attr-defined]
    m.TensorIOMode = enum.IntEnum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})  # type: ignore[attr-defined]

    if major >= 10:

        class IProgressMonitor:
            def __init__(self) -> None:
                pass

        m.IProgressMonitor = IProgressMonitor  # type: ignore[attr-defined]
    if major < 11:

        class IInt8EntropyCalibrator2:
            def __init__(self) -> None:
                pass

        m.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2  # type: ignore[attr-defined]

    class Input:
        def __init__(self, name: str, shape: tuple[int, ...]) -> None:
            self.name, self.shape = name, shape

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.inputs: list[Input] = []
            self.num_layers = 0

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        def get_input(self, i: int) -> Input:
            return self.inputs[i]

    class OnnxParser:
        def __init__(self, network: Network, logger: Any) -> None:
            self.network = network
            self.errors: list[str] = []
            R.rec("OnnxParser")

        def parse_from_file(self, path: str) -> bool:
            R.rec("parse_from_file", Path(path).name)
            if fail_parse:
                self.errors = [
                    "In node 3 (importFancyOp): UNSUPPORTED_NODE: No importer registered for op: FancyOp"
                ]
                return False
            model = onnx.load(path, load_external_data=False)
            inits = {i.name for i in model.graph.initializer}
            for inp in model.graph.input:
                if inp.name in inits:
                    continue
                dims = tuple(
                    d.dim_value if d.HasField("dim_value") else -1 for d in inp.type.tensor_type.shape.dim
                )
                self.network.inputs.append(Input(inp.name, dims))
            self.network.num_layers = len(model.graph.node)
            return True

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, i: int) -> str:
            return self.errors[i]

    class Profile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple[Any, ...]] = {}

        def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
            R.rec("profile.set_shape", name, tuple(lo), tuple(opt), tuple(hi))
            self.shapes[name] = (lo, opt, hi)

    class TimingCache:
        def serialize(self) -> bytes:
            return b"timing-cache"

    class Config:
        def __init__(self) -> None:
            object.__setattr__(self, "flags", set())

        def __setattr__(self, name: str, value: Any) -> None:
            allowed = {
                "builder_optimization_level",
                "avg_timing_iterations",
                "profiling_verbosity",
                "max_aux_streams",
                "hardware_compatibility_level",
            }
            if major < 11:
                allowed.add("int8_calibrator")
            if major >= 10:
                allowed.add("progress_monitor")
            if name not in allowed:
                raise AttributeError(f"IBuilderConfig has no attribute {name!r} in TensorRT {version}")
            R.rec(
                f"config.{name}",
                value
                if not hasattr(value, "get_batch") and not hasattr(value, "phase_start")
                else type(value).__mro__[1].__name__,
            )
            object.__setattr__(self, name, value)

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            R.rec("config.set_memory_pool_limit", pool.name, size)

        def set_flag(self, f: Any) -> None:
            R.rec("config.set_flag", f.name)
            self.flags.add(f.name)

        def clear_flag(self, f: Any) -> None:
            R.rec("config.clear_flag", f.name)
            self.flags.discard(f.name)

        def add_optimization_profile(self, p: Profile) -> int:
            R.rec("config.add_optimization_profile")
            return 0

        def create_timing_cache(self, blob: bytes) -> TimingCache:
            R.rec("config.create_timing_cache", len(blob))
            return TimingCache()

        def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
            R.rec("config.set_timing_cache", ignore_mismatch)
            return True

        def get_timing_cache(self) -> TimingCache:
            return TimingCache()

    # Properties of the real IBuilderConfig, readable (hasattr) before they are set.
    if major < 11:
        Config.int8_calibrator = None  # type: ignore[attr-defined]
    if major >= 10:
        Config.progress_monitor = None  # type: ignore[attr-defined]

    if major < 11:

        def set_calibration_profile(self: Config, p: Profile) -> None:
            R.rec("config.set_calibration_profile")

        Config.set_calibration_profile = set_calibration_profile  # type: ignore[attr-defined]

    class Builder:
        def __init__(self, logger: Any) -> None:
            self.logger = logger
            R.rec("Builder")

        def create_network(self, flags: int = 0) -> Network:
            R.rec("create_network", flags)
            return Network(flags)

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config) -> bytes | None:
            R.rec("build_serialized_network", tuple(sorted(config.flags)))
            if fail_build:
                self.logger.log(Severity.ERROR, fail_build)
                return None
            self.logger.log(Severity.WARNING, "dynamic dimension with minimum 0 (double's warning)")
            return b"PLAN:" + repr(sorted(config.flags)).encode()

    m.Builder = Builder  # type: ignore[attr-defined]
    m.OnnxParser = OnnxParser  # type: ignore[attr-defined]

    class Engine:
        num_layers = 7
        num_io_tensors = 2
        num_optimization_profiles = 1

        def create_engine_inspector(self) -> Any:
            class Insp:
                def get_engine_information(self, fmt: Any) -> str:
                    import json

                    return json.dumps(
                        {
                            "Layers": [
                                {"Name": "conv", "Weights": {"Count": 100}, "Bias": {"Count": 4}},
                                {"Name": "relu"},
                            ]
                        }
                    )

            return Insp()

    if major >= 10:
        Engine.device_memory_size_v2 = 4096  # type: ignore[attr-defined]
    if major < 11:
        Engine.device_memory_size = 2048  # type: ignore[attr-defined]
    m.FakeEngine = Engine  # type: ignore[attr-defined]
    return m
