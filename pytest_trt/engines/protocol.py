"""The backend protocol: *building* an engine from an ONNX model and a build spec, and *running* it.

A backend answers three questions: is it available here (and which version), does it support a
given configuration (else the reason, which becomes the skip reason), and how to build an
:class:`Engine`.  An engine runs on device-resident inputs; the timing module drives it through
``h2d`` / ``infer`` / ``d2h`` / ``sync`` so the latency breakdown is the same for every backend.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_trt.hardware.device import Device

if TYPE_CHECKING:  # annotations only: the protocol depends on no concrete model, cache or recipe
    from torch import nn

    from pytest_trt.cache import ArtifactCache
    from pytest_trt.engines.recipes import Recipe
    from pytest_trt.models.datasets import Samples
    from pytest_trt.models.export import OnnxModel
    from pytest_trt.models.zoo import ModelSpec

__all__ = [
    "Availability",
    "Backend",
    "BuildContext",
    "BuildFailed",
    "BuildSpec",
    "BuiltNotRunnable",
    "Device",
    "Engine",
    "EngineInfo",
    "Feed",
    "Inputs",
    "Unsupported",
    "as_arrays",
    "typed_inputs",
]


class BuildFailed(RuntimeError):
    """A configuration could not be built; ``log`` holds the backend's captured errors and ``recipe``
    the recipe that was refused, where one had been chosen (a refusal is a result of that recipe)."""

    def __init__(self, message: str, log: Sequence[str] = (), oom: bool = False) -> None:
        super().__init__(message)
        self.log = list(log)
        self.oom = oom
        self.recipe: Recipe | None = None


class BuiltNotRunnable(RuntimeError):
    """A plan was really built but cannot run on this machine (no usable GPU): a result, not a failure."""

    def __init__(self, message: str, info: EngineInfo) -> None:
        super().__init__(message)
        self.info = info


class Unsupported(RuntimeError):
    """A configuration this backend cannot express here; becomes a skip with the reason."""


@dataclass(frozen=True)
class Availability:
    ok: bool
    version: str | None = None
    reason: str | None = None

    def header(self, name: str) -> str:
        return f"{name} {self.version}" if self.ok else f"{name}: unavailable ({self.reason})"


@dataclass(frozen=True)
class BuildSpec:
    """Everything that selects an engine, besides the model: each field is a cache-key part."""

    precision: str = "fp32"
    profile: str = "dynamic"  # static | dynamic
    batch: int = 1  # inference batch; the fixed batch of a static profile
    batch_range: tuple[int, int, int] = (1, 128, 256)  # min/opt/max of a dynamic profile
    hw: int | None = None  # inference resolution (square); None: the model's default
    hw_range: tuple[int, int, int] | None = None  # dynamic H/W profile, when set
    opt_level: int = 3
    workspace_mb: int | None = None
    tf32: bool = True
    avg_timing_iterations: int | None = None
    max_aux_streams: int | None = None
    hardware_compat: str | None = None  # none | ampere_plus | same_compute_capability
    compute_capability: str | None = None  # TensorRT-RTX's build target ("8.9", "current")
    version_compatible: bool = False
    allow_host_code: bool = False
    timing_cache: bool = True
    typing: str = "auto"  # auto | weak | strong (TensorRT 10 only has a choice)
    calib_method: str = "auto"  # auto: the method measured best for the quantizer used
    recipe_tool: str = "auto"  # auto | modelopt | ort
    cuda_graph: str = "auto"  # auto | on | off
    sparse_weights: bool = False  # the weights hold 2:4 sparsity: TensorRT may pick sparse kernels
    int8_exclude: str = "auto"  # int8 layers kept in float: none | auto (measured) | comma-separated names

    @property
    def build_batches(self) -> tuple[int, int, int]:
        return (self.batch,) * 3 if self.profile == "static" else self.batch_range

    def key(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d.pop("cuda_graph")  # a runtime choice, not part of the built artifact
        if self.profile == "dynamic":
            d.pop("batch")  # one dynamic engine serves every batch in its range
        return d


def named_exclusions(spec: BuildSpec) -> tuple[str, ...]:
    """The int8 layers ``--trt-int8-exclude`` names (``auto`` is measured when the graph is prepared)."""
    if spec.precision != "int8" or spec.int8_exclude in ("none", "auto"):
        return ()
    return tuple(n.strip() for n in spec.int8_exclude.split(",") if n.strip())


@dataclass
class EngineInfo:
    backend: str
    backend_version: str
    recipe: Recipe
    build_seconds: float = 0.0
    cached: bool = False
    plan_bytes: int | None = None
    device_memory_bytes: int | None = None
    layers: int | None = None
    engine_params: int | None = None
    io: str = "device"  # device: inputs live on the engine's device; host: the backend copies itself
    cuda_graph: bool = False  # a graph is captured now; each case's record says so in timing.cuda_graph
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend_version": self.backend_version,
            "build_seconds": round(self.build_seconds, 4),
            "cached": self.cached,
            "plan_bytes": self.plan_bytes,
            "device_memory_bytes": self.device_memory_bytes,
            "layers": self.layers,
            "engine_params": self.engine_params,
            "io": self.io,
            **self.extra,
        }


@dataclass
class BuildContext:
    """What a backend may use to build: the cache, the model, its exported ONNX, calibration data."""

    cache: ArtifactCache
    spec: BuildSpec
    model_spec: ModelSpec
    onnx: OnnxModel
    device: Device
    torch_model: Callable[[], nn.Module]
    calibration: Callable[[], Samples]
    verbose: int = 0


Inputs = np.ndarray | Sequence[np.ndarray]  # one array per model input, in the model's input order


def as_arrays(x: Inputs) -> list[np.ndarray]:
    return [x] if isinstance(x, np.ndarray) else list(x)


def typed_inputs(x: Inputs, dtypes: Sequence[Any], names: Sequence[str] = ()) -> list[np.ndarray]:
    """One contiguous array per model input, each of the type the graph declares (a host engine converts
    nothing itself: float64 samples for a float input would be refused); a wrong count names the inputs."""
    arrays = as_arrays(x)
    if len(arrays) != len(dtypes):
        listed = f" ({', '.join(names)})" if names else ""
        raise ValueError(f"the model takes {len(dtypes)} inputs{listed}; {len(arrays)} given")
    # np.asarray(order="C"), not ascontiguousarray: that one turns a scalar input into shape (1,)
    return [np.asarray(a, dtype=t, order="C") for a, t in zip(arrays, dtypes, strict=True)]


class Feed(abc.ABC):
    """Input buffers for one batch: a host copy (pinned on CUDA) and a device copy of every input."""

    batch: int


class Engine(abc.ABC):
    info: EngineInfo
    device: Device

    @abc.abstractmethod
    def make_feed(self, x: Inputs) -> Feed:
        """Allocate buffers for the inputs ``x`` and put them on the device (untimed)."""

    @abc.abstractmethod
    def h2d(self, feed: Feed) -> None:
        """Copy the feed's host buffer to its device buffer (enqueued on the engine's stream)."""

    @abc.abstractmethod
    def infer(self, feed: Feed) -> Any:
        """Enqueue one inference on the device-resident input; return the device outputs."""

    @abc.abstractmethod
    def d2h(self, out: Any) -> list[np.ndarray]:
        """Enqueue copies of ``out`` to host buffers; the arrays are valid after :meth:`sync`."""

    @abc.abstractmethod
    def sync(self) -> None:
        """Wait for all work this engine enqueued."""

    @property
    def stream(self) -> Any:
        """The CUDA stream the engine runs on (a torch.cuda.Stream), or None on CPU."""
        return None

    def load(self, feed: Feed, x: np.ndarray) -> None:
        """Write a new first input into the feed's host buffer (same shape), e.g. the next video frame."""
        raise NotImplementedError(f"{self.info.backend}: feeding new data into an existing feed")

    def device_input(self, feed: Feed) -> Any:
        """The feed's first input on the device (a torch tensor), for preprocessing on the GPU; None if none."""
        return None

    def device_outputs(self, out: Any) -> list[Any]:
        """``infer``'s outputs as device tensors (torch), for postprocessing on the GPU."""
        raise NotImplementedError(f"{self.info.backend}: its outputs are not device tensors")

    def capture_graph(self, feed: Feed) -> bool:
        """Capture ``infer(feed)`` into a CUDA graph replayed by later calls; False if not possible."""
        return False

    def async_throughput(self, feed: Feed, seconds: float) -> dict[str, Any] | None:
        """Samples/s of the engine's own throughput mode (e.g. OpenVINO's async requests), or None."""
        return None

    def run(self, x: Inputs) -> list[np.ndarray]:
        """Synchronous convenience: host input in, host outputs out (for quality evaluation)."""
        feed = self.make_feed(x)
        out = self.d2h(self.infer(feed))
        self.sync()
        return [np.array(o, copy=True) for o in out]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release device resources."""


class Backend(abc.ABC):
    name: str = ""
    #: which precisions this backend can ever run, and how it treats the opt level
    precisions: tuple[str, ...] = ("fp32",)
    uses_opt_level: bool = False
    #: False for eager frameworks: they build from the nn.Module (no ONNX) and have no build-time profile
    consumes_onnx: bool = True
    #: "PRECISION:GATE" lines that replace the reference rule's defaults for this backend's engines (a
    #: measured property of its kernels, e.g. how far its int8 rounding strays from the Q/DQ graph);
    #: the user's gates still override them
    rule_overrides: tuple[str, ...] = ()

    @abc.abstractmethod
    def availability(self) -> Availability: ...

    def unsupported(self, spec: BuildSpec, model: ModelSpec, device: Device) -> str | None:
        """The reason this configuration cannot run with this backend here, or None."""
        if spec.precision not in self.precisions:
            return f"{self.name} backend does not run {spec.precision} (it runs {', '.join(self.precisions)})"
        if model.is_onnx and not self.consumes_onnx:
            return f"{self.name} runs a PyTorch module; {model.name} is an ONNX file (use onnxruntime or tensorrt)"
        moved = [i.name for i in model.inputs if i.batch_axis != 0]
        if spec.precision == "int8" and moved:
            return (
                f"int8 calibration feeds every input batch first; {model.name}'s graph takes "
                f"{', '.join(map(repr, moved))} with the batch elsewhere or without one"
            )
        try:
            self.recipe(spec)  # a recipe this backend cannot express here is the reason
        except Unsupported as exc:
            return str(exc)
        return None

    @abc.abstractmethod
    def recipe(self, spec: BuildSpec) -> Recipe:
        """The precision recipe this backend would use for ``spec`` (raises Unsupported)."""

    @abc.abstractmethod
    def build(self, ctx: BuildContext) -> Engine: ...
