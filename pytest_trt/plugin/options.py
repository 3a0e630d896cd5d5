"""Command-line options (group ``trt``), their ini fallbacks, validation, and machine-aware defaults.

Every option ``--trt-x-y`` has an ini key ``trt_x_y``; the command line wins over the ini file,
which wins over the default.  Defaults depend on the machine: without a GPU they pick a small matrix
that finishes in minutes on two cores; with one they follow the reference studies (batch sweep
1..256, static and dynamic profiles).  Invalid values are usage errors listing the valid ones.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_trt.cache import default_cache_dir
from pytest_trt.engines import registry as backends
from pytest_trt.engines.protocol import BuildSpec, Device
from pytest_trt.engines.recipes import CALIB_METHODS, PRECISIONS
from pytest_trt.quality.gates import Gate, GateSyntaxError, parse_overrides

PROFILES = ("static", "dynamic")
TRISTATE = ("auto", "on", "off")


@dataclass(frozen=True)
class Opt:
    name: str  # without the leading --trt-
    help: str
    kind: str = "str"  # str | csv | int | float | flag | append
    choices: Sequence[str] | None = None
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return f"--trt-{self.name}"

    @property
    def ini(self) -> str:
        return "trt_" + self.name.replace("-", "_")

    @property
    def dest(self) -> str:
        return "trt_" + self.name.replace("-", "_")


OPTIONS: tuple[Opt, ...] = (
    Opt("backend", "backends to run (comma list)", "csv", backends.NAMES),
    Opt("precision", "precisions (comma list)", "csv", PRECISIONS),
    Opt("batch", "inference batch sizes (comma list)", "csv", metavar="N,N"),
    Opt(
        "profile",
        "batch profiles: static (batch fixed at build) and/or dynamic (min/opt/max)",
        "csv",
        PROFILES,
    ),
    Opt(
        "opt-level",
        "builder optimization levels 0-5 (comma list); onnxruntime maps them to graph levels",
        "csv",
    ),
    Opt("models", "restrict to these models (comma list; default: what each benchmark declares)", "csv"),
    Opt(
        "onnx",
        "benchmark this ONNX file, named after the file or NAME=PATH (repeatable; with no test path given, "
        "only these files run)",
        "append",
        metavar="[NAME=]PATH",
    ),
    Opt(
        "shapes",
        "input shapes as trtexec writes them, batch first: name:1x3x224x224[,name2:...] (repeatable); sizes "
        "the dynamic axes of --trt-onnx files; a batch given here is the model's default batch",
        "append",
        metavar="SHAPES",
    ),
    Opt(
        "min-shapes",
        "min shapes of a dynamic profile (trtexec --minShapes form; with --trt-max-shapes)",
        "append",
    ),
    Opt("opt-shapes", "opt shapes of a dynamic profile (default: --trt-shapes, else the max)", "append"),
    Opt("max-shapes", "max shapes of a dynamic profile (trtexec --maxShapes form)", "append"),
    Opt(
        "onnx-task",
        "what the outputs of --trt-onnx files are: generic (closeness, errors, cosine) or a task",
        "str",
        ("generic", "classification", "segmentation", "regression", "embedding"),
    ),
    Opt("inputs", "evaluation inputs: an .npz with one array per model input, by name", metavar="NPZ"),
    Opt("calib-inputs", "int8 calibration inputs: an .npz with one array per model input", metavar="NPZ"),
    Opt(
        "reference-outputs",
        "trusted outputs for --trt-inputs (.npz, one array per output): the baseline every engine is judged by",
        metavar="NPZ",
    ),
    Opt("dynamic-batch", "min,opt,max batch of the dynamic profile (default 1,128,256)", "csv"),
    Opt("dynamic-hw", "min,opt,max height/width of dynamic-resolution models (e.g. 320,640,960)", "csv"),
    Opt("hw", "inference resolutions for models with dynamic H/W (comma list)", "csv"),
    Opt("cache-dir", "persistent artifact cache (ONNX, plans, timing caches)", metavar="DIR"),
    Opt("rounds", "minimum timed inferences per benchmark (default 100: enough for p99)", "int"),
    Opt("min-time", "minimum timed seconds per benchmark (default 0: stop on precision)", "float"),
    Opt(
        "max-time",
        "cap on timed seconds per benchmark; the end-to-end loop gets a quarter more (default GPU 10, CPU 5)",
        "float",
    ),
    Opt(
        "target-ci",
        "stop timing once the median's 95%% CI is within this fraction (default 0.005 = +-0.5%%); 0 = fixed rounds",
        "float",
    ),
    Opt(
        "valid-ci",
        "a result is valid for gating when its median's 95%% CI is within this fraction (default GPU 0.01, CPU 0.02)",
        "float",
    ),
    Opt("warmup", "warm-up seconds (at least --trt-warmup-iters iterations)", "float"),
    Opt("warmup-iters", "minimum warm-up iterations", "int"),
    Opt("warmup-fraction", "warm up on this fraction of the dataset (reference study: 0.1)", "float"),
    Opt("e2e-rounds", "minimum iterations of the end-to-end (H2D+compute+D2H) loop", "int"),
    Opt("weights", "auto | pretrained | random | file:PATH (state dict, loaded with weights_only=True)"),
    Opt("dataset", "labelled ImageFolder root for accuracy, or 'digits'", metavar="PATH"),
    Opt("samples", "evaluation samples for quality metrics", "int"),
    Opt("calib-samples", "calibration samples for int8 recipes", "int"),
    Opt("calib-method", "int8 calibration method", "str", CALIB_METHODS),
    Opt("seed", "seed of synthetic inputs and random weights", "int"),
    Opt("device", "auto | cpu | cuda | cuda:N"),
    Opt("cuda-graph", "capture inference into a CUDA graph (torch, tensorrt)", "str", TRISTATE),
    Opt(
        "typing",
        "TensorRT typing: auto (weak <= 10, strong on 11), weak (builder flags), strong (ONNX)",
        "str",
        ("auto", "weak", "strong"),
    ),
    Opt("tf32", "allow TF32 for fp32 (TensorRT and torch)", "str", ("on", "off")),
    Opt("workspace-mb", "TensorRT workspace memory-pool limit in MiB", "int"),
    Opt("timing-iterations", "TensorRT avg_timing_iterations", "int"),
    Opt("aux-streams", "TensorRT max_aux_streams", "int"),
    Opt(
        "compute-capability",
        "GPU architecture TensorRT-RTX builds for, as MAJOR.MINOR (8.9) or 'current'; default: the local "
        "GPU's, or 8.9 on a machine without one (plans are then built, not run)",
    ),
    Opt(
        "hardware-compat",
        "TensorRT hardware compatibility level",
        "str",
        ("none", "ampere_plus", "same_compute_capability"),
    ),
    Opt(
        "version-compatible", "build version-compatible TensorRT plans (needs --trt-allow-host-code)", "flag"
    ),
    Opt("allow-host-code", "allow loading plans that embed host code (lean runtime)", "flag"),
    Opt("no-timing-cache", "do not use the persistent TensorRT timing cache", "flag"),
    Opt(
        "recipe-tool",
        "graph-recipe converter: auto (ModelOpt if installed), modelopt, ort",
        "str",
        ("auto", "modelopt", "ort"),
    ),
    Opt("on-build-failure", "what a failed build does to its test", "str", ("fail", "skip")),
    Opt("gate", "quality gate PRECISION:METRIC>=VALUE (repeatable; '*:' for all precisions)", "append"),
    Opt(
        "baseline",
        "pytest-benchmark JSON to gate this run against (same rule as `pytest-trt compare`)",
        metavar="FILE",
    ),
    Opt(
        "video",
        "video for benchmarks/test_realtime.py: a file, or a camera index such as 0 (default: a clip made "
        "from scikit-image photographs)",
        metavar="PATH|INDEX",
    ),
    Opt(
        "fps-target",
        "frame rate the real-time pipeline must reach (default 30; given: a failed target fails)",
        "float",
    ),
    Opt("frames", "frames timed per real-time case (default GPU 300, CPU 40)", "int"),
    Opt("power-mode", "Jetson power mode(s) this run is meant for; other modes skip", "csv"),
    Opt("lock-clocks", "lock GPU clocks through NVML for the session: max | base | MHZ (restored after)"),
    Opt("json", "write every case's record (also failed and skipped ones) to this file", metavar="FILE"),
    Opt(
        "shard",
        "run only shard I of N of the collected tests (deterministic: one CI runner per shard)",
        metavar="I/N",
    ),
    Opt(
        "claim-dir",
        "share the collected tests with other pytest processes through this directory: each engine group "
        "runs in the first process to claim it (used by `pytest-trt run --gpus`)",
        metavar="DIR",
    ),
    Opt(
        "claim-rank",
        "with --trt-claim-dir: this process's place in the shared queue (pairs of processes take their "
        "share from both ends and meet in the middle), so each sets up about 1/N of the models",
        metavar="I/N",
    ),
)
_BY_NAME = {o.name: o for o in OPTIONS}


def addoptions(parser: pytest.Parser) -> None:
    group = parser.getgroup("trt", "pytest-trt: inference engine benchmarks")
    for o in OPTIONS:
        choices = f" ({', '.join(o.choices)})" if o.choices else ""
        if o.kind == "flag":
            group.addoption(o.flag, action="store_true", default=None, dest=o.dest, help=o.help)
            parser.addini(o.ini, o.help, type="bool", default=False)
        elif o.kind == "append":
            group.addoption(o.flag, action="append", default=None, dest=o.dest, help=o.help)
            parser.addini(o.ini, o.help, type="linelist", default=[])
        else:
            group.addoption(
                o.flag, action="store", default=None, dest=o.dest, metavar=o.metavar, help=o.help + choices
            )
            parser.addini(o.ini, o.help + choices, default=None)


def raw(config: pytest.Config, name: str) -> Any:
    """The CLI value if given, else the ini value, else None."""
    o = _BY_NAME[name]
    v = config.getoption(o.dest)
    if v is not None and v != []:
        return v
    ini = config.getini(o.ini)
    if o.kind == "flag":
        return bool(ini) or None
    if o.kind == "append":
        return list(ini) or None
    return ini if ini not in (None, "", []) else None


def usage(name: str, value: Any, valid: str) -> pytest.UsageError:
    return pytest.UsageError(
        f"--trt-{name} (ini trt_{name.replace('-', '_')}): invalid value {value!r}; {valid}"
    )


def _csv(name: str, value: Any) -> list[str]:
    items = [v.strip() for v in str(value).split(",") if v.strip()]
    if not items:
        raise usage(name, value, "give a comma-separated list")
    return items


def _choices(name: str, value: Any, choices: Sequence[str]) -> list[str]:
    items = _csv(name, value)
    bad = [i for i in items if i not in choices]
    if bad:
        raise usage(name, ",".join(bad), f"valid values: {', '.join(choices)}")
    return list(dict.fromkeys(items))


def _ints(name: str, value: Any, lo: int, hi: int | None = None) -> list[int]:
    out = []
    for i in _csv(name, value):
        try:
            n = int(i)
        except ValueError:
            raise usage(
                name, i, f"expected integers{f' {lo}-{hi}' if hi is not None else f' >= {lo}'}"
            ) from None
        if n < lo or (hi is not None and n > hi):
            raise usage(name, n, f"expected integers{f' {lo}-{hi}' if hi is not None else f' >= {lo}'}")
        out.append(n)
    return list(dict.fromkeys(out))


def _number(name: str, value: Any, cast: Callable[[str], Any], lo: float) -> Any:
    try:
        v = cast(str(value))
    except ValueError:
        raise usage(name, value, f"expected a number >= {lo}") from None
    if v < lo:
        raise usage(name, value, f"expected a number >= {lo}")
    return v


def _triple(name: str, value: Any) -> tuple[int, int, int]:
    v = _ints(name, value, 1) if value is not None else []
    if len(v) == 1:
        v = v * 3
    if len(v) != 3 or not (v[0] <= v[1] <= v[2]):
        raise usage(name, value, "expected min,opt,max with min <= opt <= max")
    return v[0], v[1], v[2]


def gpu_present() -> bool:
    """Is there a CUDA GPU? NVML first (no CUDA context), torch as a fallback."""
    from pytest_trt.hardware import telemetry

    if telemetry.nvml() is not None:
        return len(telemetry.visible_handles()) > 0
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def resolve_device(value: str | None) -> Device:
    v = value or "auto"
    if v == "cpu" or (v == "auto" and not gpu_present()):
        return Device("cpu", 0, "cpu")
    if v == "auto":
        v = "cuda:0"
    if v == "cuda":
        v = "cuda:0"
    if not v.startswith("cuda:") or not v[5:].isdigit():
        raise usage("device", value, "valid values: auto, cpu, cuda, cuda:N")
    from pytest_trt.hardware import telemetry

    idx = int(v[5:])
    handles = telemetry.visible_handles()
    name = "cuda"
    if idx < len(handles):
        name = telemetry.gpu_info(*handles[idx])["name"]
    elif not gpu_present():
        raise usage("device", value, "no CUDA GPU is visible; use --trt-device cpu")
    return Device("cuda", idx, name)


@dataclass
class Settings:
    """The resolved options of one session (stored in ``config.stash``)."""

    device: Device
    backends: list[str]
    precisions: list[str]
    batches: list[int]
    profiles: list[str]
    opt_levels: list[int]
    models: list[str] | None
    dynamic_batch: tuple[int, int, int]
    dynamic_hw: tuple[int, int, int] | None
    hws: list[int] | None
    cache_dir: Path
    rounds: int
    min_time: float
    max_time: float
    target_ci: float
    valid_ci: float
    warmup: float
    warmup_iters: int
    warmup_fraction: float | None
    e2e_rounds: int
    weights: str
    dataset: str | None
    samples: int
    calib_samples: int
    calib_method: str
    seed: int
    cuda_graph: str
    typing: str
    tf32: bool
    workspace_mb: int | None
    timing_iterations: int | None
    aux_streams: int | None
    hardware_compat: str | None
    compute_capability: str | None
    version_compatible: bool
    allow_host_code: bool
    timing_cache: bool
    recipe_tool: str
    on_build_failure: str
    gates: dict[str, list[Gate]] = field(default_factory=dict)
    baseline: Path | None = None
    power_modes: list[int] | None = None
    lock_clocks: str | None = None
    json_path: Path | None = None
    shard: tuple[int, int] | None = None
    claim_dir: Path | None = None
    video: str | None = None
    fps_target: float = 30.0
    frames: int = 40
    claim_rank: tuple[int, int] | None = None
    onnx_files: list[str] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # opt shapes by input name
    min_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    max_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    onnx_task: str = "generic"
    inputs_npz: str | None = None
    calib_npz: str | None = None
    reference_outputs: str | None = None
    explicit: set[str] = field(default_factory=set)  # options the user set (CLI or ini)

    def build_spec(
        self,
        precision: str,
        profile: str,
        batch: int,
        opt_level: int,
        hw: int | None,
        hw_range: tuple[int, int, int] | None,
    ) -> BuildSpec:
        return BuildSpec(
            precision=precision,
            profile=profile,
            batch=batch,
            batch_range=self.dynamic_batch,
            hw=hw,
            hw_range=hw_range,
            opt_level=opt_level,
            workspace_mb=self.workspace_mb,
            tf32=self.tf32,
            avg_timing_iterations=self.timing_iterations,
            max_aux_streams=self.aux_streams,
            hardware_compat=self.hardware_compat,
            compute_capability=self.compute_capability,
            version_compatible=self.version_compatible,
            allow_host_code=self.allow_host_code,
            timing_cache=self.timing_cache,
            typing=self.typing,
            calib_method=self.calib_method,
            recipe_tool=self.recipe_tool,
            cuda_graph=self.cuda_graph,
        )

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("gates", "explicit")}
        d["device"] = self.device.torch
        d["cache_dir"] = str(self.cache_dir)
        d["baseline"] = str(self.baseline) if self.baseline else None
        d["json_path"] = str(self.json_path) if self.json_path else None
        d["claim_dir"] = str(self.claim_dir) if self.claim_dir else None
        d["gates"] = {k: [str(g) for g in v] for k, v in self.gates.items()}
        return d


def resolve(config: pytest.Config) -> Settings:
    """Validate every option and fill in machine-aware defaults; raises pytest.UsageError."""
    r = {o.name: raw(config, o.name) for o in OPTIONS}
    explicit = {k for k, v in r.items() if v is not None}
    device = resolve_device(r["device"])
    gpu = device.is_cuda
    if gpu:
        d_backends, d_prec, d_batch, d_prof = (
            ["tensorrt", "torch"],
            list(("fp32", "fp16", "int8")),
            [1, 32, 64, 128, 256],
            ["static", "dynamic"],
        )
        d_max_time, d_e2e = 10.0, 10
    else:
        # OpenVINO joins onnxruntime on the CPU: fp32 at parity, int8 4-11x faster (docs/measurements.md)
        d_backends, d_prec, d_batch, d_prof = (
            ["onnxruntime", "openvino", "tensorrt"],
            ["fp32", "fp16", "int8"],
            [1, 8],
            ["dynamic"],
        )
        d_max_time, d_e2e = 5.0, 10
    try:
        gates = parse_overrides(r["gate"] or [])
    except GateSyntaxError as exc:
        raise pytest.UsageError(str(exc)) from None
    weights = r["weights"] or "auto"
    if weights not in ("auto", "pretrained", "random") and not weights.startswith("file:"):
        raise usage("weights", weights, "valid values: auto, pretrained, random, file:PATH")
    dyn_hw = _triple("dynamic-hw", r["dynamic-hw"]) if r["dynamic-hw"] is not None else None
    s = Settings(
        device=device,
        backends=_choices("backend", r["backend"], backends.names()) if r["backend"] else d_backends,
        precisions=_choices("precision", r["precision"], PRECISIONS) if r["precision"] else d_prec,
        batches=_ints("batch", r["batch"], 1) if r["batch"] else d_batch,
        profiles=_choices("profile", r["profile"], PROFILES) if r["profile"] else d_prof,
        opt_levels=_ints("opt-level", r["opt-level"], 0, 5) if r["opt-level"] else [3],
        models=_csv("models", r["models"]) if r["models"] else None,
        dynamic_batch=_triple("dynamic-batch", r["dynamic-batch"]) if r["dynamic-batch"] else (1, 128, 256),
        dynamic_hw=dyn_hw,
        hws=_ints("hw", r["hw"], 8) if r["hw"] else None,
        cache_dir=Path(r["cache-dir"]).expanduser() if r["cache-dir"] else default_cache_dir(),
        rounds=_number("rounds", r["rounds"], int, 1) if r["rounds"] else 100,
        min_time=_number("min-time", r["min-time"], float, 0) if r["min-time"] is not None else 0.0,
        max_time=_number("max-time", r["max-time"], float, 0) if r["max-time"] is not None else d_max_time,
        target_ci=_number("target-ci", r["target-ci"], float, 0) if r["target-ci"] is not None else 0.005,
        # Shared CPUs are noisier than a GPU: +-2 % there still pins a median for a 5 % gate over runs.
        valid_ci=_number("valid-ci", r["valid-ci"], float, 0)
        if r["valid-ci"] is not None
        else (0.01 if gpu else 0.02),
        warmup=_number("warmup", r["warmup"], float, 0)
        if r["warmup"] is not None
        else (0.2 if gpu else 0.05),
        warmup_iters=_number("warmup-iters", r["warmup-iters"], int, 0)
        if r["warmup-iters"] is not None
        else (5 if gpu else 3),  # the quality pass has already run the engine
        warmup_fraction=_number("warmup-fraction", r["warmup-fraction"], float, 0)
        if r["warmup-fraction"]
        else None,
        e2e_rounds=_number("e2e-rounds", r["e2e-rounds"], int, 0) if r["e2e-rounds"] is not None else d_e2e,
        weights=weights,
        dataset=r["dataset"],
        samples=_number("samples", r["samples"], int, 1) if r["samples"] else (64 if gpu else 8),
        calib_samples=_number("calib-samples", r["calib-samples"], int, 1)
        if r["calib-samples"]
        else (64 if gpu else 16),
        calib_method=_choices("calib-method", r["calib-method"], CALIB_METHODS)[0]
        if r["calib-method"]
        else "entropy",
        seed=_number("seed", r["seed"], int, 0) if r["seed"] is not None else 0,
        cuda_graph=_choices("cuda-graph", r["cuda-graph"], TRISTATE)[0] if r["cuda-graph"] else "auto",
        typing=_choices("typing", r["typing"], ("auto", "weak", "strong"))[0] if r["typing"] else "auto",
        tf32=(_choices("tf32", r["tf32"], ("on", "off"))[0] == "on") if r["tf32"] else True,
        workspace_mb=_number("workspace-mb", r["workspace-mb"], int, 1) if r["workspace-mb"] else None,
        timing_iterations=_number("timing-iterations", r["timing-iterations"], int, 1)
        if r["timing-iterations"]
        else None,
        aux_streams=_number("aux-streams", r["aux-streams"], int, 0)
        if r["aux-streams"] is not None
        else None,
        hardware_compat=_choices(
            "hardware-compat", r["hardware-compat"], ("none", "ampere_plus", "same_compute_capability")
        )[0]
        if r["hardware-compat"]
        else None,
        compute_capability=_compute_capability(r["compute-capability"], device),
        version_compatible=bool(r["version-compatible"]),
        allow_host_code=bool(r["allow-host-code"]),
        timing_cache=not r["no-timing-cache"],
        recipe_tool=_choices("recipe-tool", r["recipe-tool"], ("auto", "modelopt", "ort"))[0]
        if r["recipe-tool"]
        else "auto",
        on_build_failure=_choices("on-build-failure", r["on-build-failure"], ("fail", "skip"))[0]
        if r["on-build-failure"]
        else "fail",
        gates=gates,
        baseline=Path(r["baseline"]).expanduser() if r["baseline"] else None,
        power_modes=_ints("power-mode", r["power-mode"], 0) if r["power-mode"] else None,
        lock_clocks=_lock_clocks(r["lock-clocks"]),
        json_path=Path(r["json"]).expanduser() if r["json"] else None,
        shard=_shard(r["shard"]),
        claim_dir=Path(r["claim-dir"]) if r["claim-dir"] else None,
        video=r["video"],
        fps_target=_number("fps-target", r["fps-target"], float, 0.001)
        if r["fps-target"] is not None
        else 30.0,
        frames=_number("frames", r["frames"], int, 1) if r["frames"] else (300 if gpu else 40),
        claim_rank=_shard(r["claim-rank"], "claim-rank"),
        onnx_files=list(r["onnx"] or []),
        onnx_task=_choices("onnx-task", r["onnx-task"], _BY_NAME["onnx-task"].choices or ())[0]
        if r["onnx-task"]
        else "generic",
        inputs_npz=_npz("inputs", r["inputs"]),
        calib_npz=_npz("calib-inputs", r["calib-inputs"]),
        reference_outputs=_npz("reference-outputs", r["reference-outputs"]),
        explicit=explicit,
        **_shape_options(r),
    )
    if s.reference_outputs and not s.inputs_npz:
        raise usage(
            "reference-outputs",
            s.reference_outputs,
            "trusted outputs belong to given inputs: pass the inputs they were computed from with --trt-inputs",
        )
    if s.baseline is not None and not s.baseline.is_file():
        raise usage(
            "baseline",
            str(s.baseline),
            "no such file: pass a pytest-benchmark JSON written by --benchmark-json",
        )
    if s.dataset and s.dataset != "digits" and not Path(s.dataset).expanduser().is_dir():
        raise usage(
            "dataset",
            s.dataset,
            "no such directory: pass an ImageFolder root (<root>/<class>/<image>) or 'digits'",
        )
    return s


DEFAULT_COMPUTE_CAPABILITY = "8.9"  # Ada: built ahead of time where no GPU is visible


def _compute_capability(v: Any, device: Device) -> str:
    """``MAJOR.MINOR`` or ``current``; unset: the local GPU's, else :data:`DEFAULT_COMPUTE_CAPABILITY`."""
    if v is None:
        if device.is_cuda:
            import torch

            major, minor = torch.cuda.get_device_capability(device.index)
            return f"{major}.{minor}"
        return DEFAULT_COMPUTE_CAPABILITY
    text = str(v).strip().lower().removeprefix("sm")
    if text == "current":
        return text
    m = re.fullmatch(r"(\d+)\.?(\d)", text)
    if not m:
        raise usage("compute-capability", v, "expected MAJOR.MINOR (e.g. 8.9), SM89 or 'current'")
    return f"{m.group(1)}.{m.group(2)}"


def _npz(name: str, v: Any) -> str | None:
    if v is None:
        return None
    p = Path(str(v)).expanduser()
    if not p.is_file():
        raise usage(name, str(v), "no such file: pass an .npz written by numpy.savez(path, name=array, ...)")
    return str(p)


def _shape_options(r: dict[str, Any]) -> dict[str, dict[str, tuple[int, ...]]]:
    """--trt-shapes / --trt-min-shapes / --trt-opt-shapes / --trt-max-shapes, parsed and cross-checked."""
    from pytest_trt.models.signature import ShapeSyntaxError, parse_shapes

    try:
        given = {
            k: parse_shapes(r[k] or [], f"--trt-{k}")
            for k in ("shapes", "min-shapes", "opt-shapes", "max-shapes")
        }
    except ShapeSyntaxError as exc:
        raise pytest.UsageError(str(exc)) from None
    opt = dict(given["shapes"])
    for name, shape in given["opt-shapes"].items():
        if name in opt and opt[name] != shape:
            raise usage("opt-shapes", name, f"--trt-shapes already gives {name} another shape")
        opt[name] = shape
    lo, hi = given["min-shapes"], given["max-shapes"]
    if set(lo) != set(hi):
        odd = sorted(set(lo) ^ set(hi))
        raise usage(
            "min-shapes", ",".join(odd), "give both --trt-min-shapes and --trt-max-shapes for each input"
        )
    for name in lo:
        if len(lo[name]) != len(hi[name]) or any(a > b for a, b in zip(lo[name], hi[name], strict=False)):
            raise usage("min-shapes", name, f"min {lo[name]} must not exceed max {hi[name]}, axis by axis")
    return {"shapes": opt, "min_shapes": dict(lo), "max_shapes": dict(hi)}


def _shard(v: Any, name: str = "shard") -> tuple[int, int] | None:
    if v is None:
        return None
    from pytest_trt.run.shard import parse_shard

    try:
        return parse_shard(str(v))
    except ValueError as exc:
        raise pytest.UsageError(str(exc).replace("--trt-shard", f"--trt-{name}")) from None


def _lock_clocks(v: Any) -> str | None:
    if v is None:
        return None
    v = str(v)
    if v in ("max", "base") or v.isdigit():
        return v
    raise usage("lock-clocks", v, "valid values: max, base, or a clock in MHz")


def env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default
