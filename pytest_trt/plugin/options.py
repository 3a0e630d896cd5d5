"""The ``--trt-*`` options, each declared once: its parser, its default (or machine-aware default), its
choices and its help.  ``addoptions`` registers them (each with an ini key ``trt_x_y``) and
:func:`pytest_trt.plugin.settings.resolve` turns them into :class:`~pytest_trt.plugin.settings.Settings`
by one loop over this table.

The command line wins over the ini file, which wins over the default.  Defaults depend on the machine:
without a GPU they pick a small matrix that finishes in minutes on two cores; with one they follow the
reference studies (batch sweep 1..256, static and dynamic profiles).  Invalid values are usage errors
listing the valid ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_trt.cache import default_cache_dir
from pytest_trt.engines import registry
from pytest_trt.engines.recipes import CALIB_METHODS, PRECISIONS
from pytest_trt.hardware.device import Device
from pytest_trt.plugin import parsers as P

PROFILES = ("static", "dynamic")
TRISTATE = ("auto", "on", "off")
ISOLATE = ("on", "gpu", "off")
ONNX_TASKS = ("generic", "classification", "segmentation", "regression", "embedding")
DEFAULT_COMPUTE_CAPABILITY = "8.9"  # Ada: built ahead of time where no GPU is visible


@dataclass(frozen=True)
class Machine:
    """What a machine-aware default may depend on."""

    device: Device

    @property
    def gpu(self) -> bool:
        return self.device.is_cuda


def machine(gpu: Any, cpu: Any) -> Callable[[Machine], Any]:
    """A default that differs with and without a GPU (lists are copied, so no session shares one)."""
    return lambda m: (
        (list(gpu) if isinstance(gpu, list) else gpu)
        if m.gpu
        else (list(cpu) if isinstance(cpu, list) else cpu)
    )


def local_compute_capability(m: Machine) -> str:
    """The local GPU's compute capability (from NVML: asking CUDA would create a context before the
    timing workers are forked), else :data:`DEFAULT_COMPUTE_CAPABILITY`."""
    if m.gpu:
        from pytest_trt.hardware import telemetry

        handles = telemetry.visible_handles()
        if m.device.index < len(handles):
            cc = telemetry.gpu_info(*handles[m.device.index]).get("compute_capability")
            if cc:
                return str(cc)
        import torch

        major, minor = torch.cuda.get_device_capability(m.device.index)
        return f"{major}.{minor}"
    return DEFAULT_COMPUTE_CAPABILITY


@dataclass(frozen=True)
class Opt:
    name: str  # without the leading --trt-
    help: str
    kind: str = "str"  # how it is given: str | csv | int | float | flag | append
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None  # a callable: asked when shown
    metavar: str | None = None
    parse: P.Parser | None = None  # (name, raw value) -> setting; None: the raw value as given
    default: Any = None  # the setting when the option is not given; a callable takes the Machine
    field: str | None = None  # the Settings attribute; default: the name with '-' as '_'

    @property
    def flag(self) -> str:
        return f"--trt-{self.name}"

    @property
    def ini(self) -> str:
        return "trt_" + self.name.replace("-", "_")

    @property
    def dest(self) -> str:
        return "trt_" + self.name.replace("-", "_")

    @property
    def attr(self) -> str:
        return self.field or self.name.replace("-", "_")

    def listed_choices(self) -> Sequence[str]:
        return (self.choices() if callable(self.choices) else self.choices) or ()

    def value(self, raw: Any, where: Machine) -> Any:
        """The setting: the parsed raw value, or the default where the option was not given."""
        if raw is None:
            return self.default(where) if callable(self.default) else _copy(self.default)
        return self.parse(self.name, raw) if self.parse is not None else raw


def _copy(v: Any) -> Any:
    return type(v)(v) if isinstance(v, (list, dict)) else v


OPTIONS: tuple[Opt, ...] = (
    Opt(
        "backend",
        "backends to run (comma list)",
        "csv",
        registry.names,
        parse=P.several(registry.names),
        default=machine(["tensorrt", "torch"], ["onnxruntime", "openvino", "tensorrt"]),
        field="backends",
    ),
    Opt(
        "precision",
        "precisions (comma list)",
        "csv",
        PRECISIONS,
        parse=P.several(PRECISIONS),
        default=["fp32", "fp16", "int8"],
        field="precisions",
    ),
    Opt(
        "batch",
        "inference batch sizes (comma list)",
        "csv",
        metavar="N,N",
        parse=P.ints(1),
        default=machine([1, 32, 64, 128, 256], [1, 8]),
        field="batches",
    ),
    Opt(
        "profile",
        "batch profiles: static (batch fixed at build) and/or dynamic (min/opt/max)",
        "csv",
        PROFILES,
        parse=P.several(PROFILES),
        default=machine(["static", "dynamic"], ["dynamic"]),
        field="profiles",
    ),
    Opt(
        "opt-level",
        "builder optimization levels 0-5 (comma list); onnxruntime maps them to graph levels",
        "csv",
        parse=P.ints(0, 5),
        default=[3],
        field="opt_levels",
    ),
    Opt(
        "models",
        "restrict to these models (comma list; default: what each benchmark declares)",
        "csv",
        parse=P.csv,
    ),
    Opt(
        "onnx",
        "benchmark this ONNX file, named after the file or NAME=PATH (repeatable; with no test path given, "
        "only these files run)",
        "append",
        metavar="[NAME=]PATH",
        parse=P.as_list,
        default=[],
        field="onnx_files",
    ),
    Opt(
        "shapes",
        "input shapes as trtexec writes them, batch first: name:1x3x224x224[,name2:...] (repeatable); sizes "
        "the dynamic axes of --trt-onnx files; a batch given here is the model's default batch",
        "append",
        metavar="SHAPES",
        parse=P.shapes,
        default={},
    ),
    Opt(
        "min-shapes",
        "min shapes of a dynamic profile (trtexec --minShapes form; with --trt-max-shapes)",
        "append",
        parse=P.shapes,
        default={},
    ),
    Opt(
        "opt-shapes",
        "opt shapes of a dynamic profile (default: --trt-shapes, else the max)",
        "append",
        parse=P.shapes,
        default={},
    ),
    Opt(
        "max-shapes",
        "max shapes of a dynamic profile (trtexec --maxShapes form)",
        "append",
        parse=P.shapes,
        default={},
    ),
    Opt(
        "batch-axis",
        "where a --trt-onnx input or output holds the batch when the graph does not say it: NAME:AXIS "
        "(state:1) or NAME:none, fed once per batch (repeatable; default: where the batch's symbol is, else 0)",
        "append",
        metavar="NAME:AXIS",
        parse=P.batch_axes,
        default={},
    ),
    Opt(
        "input-value",
        "fill a --trt-onnx input with this number (a scalar mode such as sr:16000) instead of synthetic values",
        "append",
        metavar="NAME:NUMBER",
        parse=P.input_values,
        default={},
        field="input_values",
    ),
    Opt(
        "onnx-trained",
        "are the --trt-onnx files' weights trained? yes (default: the absolute gates apply) or no (random "
        "weights: the same-recipe rule judges); one file alone: --trt-onnx m.onnx:untrained",
        "str",
        ("yes", "no"),
        parse=P.yes_no,
        default=True,
    ),
    Opt(
        "onnx-task",
        "what the outputs of --trt-onnx files are: generic (closeness, errors, cosine) or a task",
        "str",
        ONNX_TASKS,
        parse=P.one_of(ONNX_TASKS),
        default="generic",
    ),
    Opt(
        "inputs",
        "evaluation inputs: an .npz with one array per model input, by name",
        metavar="NPZ",
        parse=P.npz,
        field="inputs_npz",
    ),
    Opt(
        "calib-inputs",
        "int8 calibration inputs: an .npz with one array per model input",
        metavar="NPZ",
        parse=P.npz,
        field="calib_npz",
    ),
    Opt(
        "reference-outputs",
        "trusted outputs for --trt-inputs (.npz, one array per output): the baseline every engine is judged by",
        metavar="NPZ",
        parse=P.npz,
    ),
    Opt(
        "dynamic-batch",
        "min,opt,max batch of the dynamic profile (default 1,128,256)",
        "csv",
        parse=P.triple,
        default=(1, 128, 256),
    ),
    Opt(
        "dynamic-hw",
        "min,opt,max height/width of dynamic-resolution models (e.g. 320,640,960)",
        "csv",
        parse=P.triple,
    ),
    Opt(
        "hw",
        "inference resolutions for models with dynamic H/W (comma list)",
        "csv",
        parse=P.ints(8),
        field="hws",
    ),
    Opt(
        "cache-dir",
        "persistent artifact cache (ONNX, plans, timing caches)",
        metavar="DIR",
        parse=P.path,
        default=lambda m: default_cache_dir(),
    ),
    Opt(
        "rounds",
        "minimum timed inferences per benchmark (default 100: enough for p99)",
        "int",
        parse=P.number(int, 1),
        default=100,
    ),
    Opt(
        "min-time",
        "minimum timed seconds per benchmark (default 0: stop on precision)",
        "float",
        parse=P.number(float, 0),
        default=0.0,
    ),
    Opt(
        "max-time",
        "cap on timed seconds per benchmark; the end-to-end loop gets a quarter more (default GPU 10, CPU 5)",
        "float",
        parse=P.number(float, 0),
        default=machine(10.0, 5.0),
    ),
    Opt(
        "extra-time",
        "seconds the timed loop may go on past --trt-max-time while the median's CI is still wider than "
        "--trt-valid-ci, so that a noisy engine ends valid instead of being cut short (default GPU 5, CPU 10)",
        "float",
        parse=P.number(float, 0),
        default=machine(5.0, 10.0),
    ),
    Opt(
        "target-ci",
        "stop timing once the median's 95%% CI is within this fraction (default 0.005 = +-0.5%%); 0 = fixed rounds",
        "float",
        parse=P.number(float, 0),
        default=0.005,
    ),
    Opt(
        "valid-ci",
        "a result is valid for gating when its median's 95%% CI is within this fraction (default GPU 0.01, CPU 0.02)",
        "float",
        parse=P.number(float, 0),
        default=machine(0.01, 0.02),
    ),
    Opt(
        "warmup",
        "warm-up seconds (at least --trt-warmup-iters iterations)",
        "float",
        parse=P.number(float, 0),
        default=machine(0.2, 0.05),
    ),
    Opt("warmup-iters", "minimum warm-up iterations", "int", parse=P.number(int, 0), default=machine(5, 3)),
    Opt(
        "warmup-fraction",
        "warm up on this fraction of the dataset (reference study: 0.1)",
        "float",
        parse=P.number(float, 0),
    ),
    Opt(
        "e2e-rounds",
        "minimum iterations of the end-to-end (H2D+compute+D2H) loop",
        "int",
        parse=P.number(int, 0),
        default=10,
    ),
    Opt(
        "weights",
        "auto | pretrained | random | file:PATH (state dict, loaded with weights_only=True)",
        parse=P.weights,
        default="auto",
    ),
    Opt(
        "dataset",
        "labelled ImageFolder root for accuracy, 'digits', or coco:ANNOTATIONS.json:IMAGES_DIR for "
        "detection mAP",
        metavar="PATH",
    ),
    Opt(
        "samples",
        "evaluation samples for quality metrics (default GPU 64, CPU 8; a segmenter unless set: as many "
        "images as hold 16 x 320 x 320 pixels, at least 4)",
        "int",
        parse=P.number(int, 1),
        default=machine(64, 8),
    ),
    Opt(
        "calib-samples",
        "calibration samples for int8 recipes",
        "int",
        parse=P.number(int, 1),
        default=machine(64, 16),
    ),
    Opt(
        "int8-exclude",
        "int8 layers kept in float: none, auto (each layer quantized alone on the calibration samples; the "
        "few whose error stands out stay float, named in the result) or comma-separated ONNX node names",
        "str",
        metavar="none|auto|NAMES",
        parse=P.int8_exclude,
        default="auto",
    ),
    Opt(
        "calib-method",
        "int8 calibration method (auto: minmax for the Q/DQ quantizers, entropy for TensorRT's implicit "
        "calibrator, as measured in docs/int8.md)",
        "str",
        CALIB_METHODS,
        parse=P.one_of(CALIB_METHODS),
        default="auto",
    ),
    Opt("seed", "seed of synthetic inputs and random weights", "int", parse=P.number(int, 0), default=0),
    Opt("device", "auto | cpu | cuda | cuda:N"),
    Opt(
        "cuda-graph",
        "capture inference into a CUDA graph (torch, tensorrt)",
        "str",
        TRISTATE,
        parse=P.one_of(TRISTATE),
        default="auto",
    ),
    Opt(
        "isolate",
        "time each engine in a worker process that ran nothing before it: gpu (default; GPU engines, host "
        "engines in the session's process), on (every engine), off (everything in the session's process, "
        "after whatever ran there)",
        "str",
        ISOLATE,
        parse=P.one_of(ISOLATE),
        default="gpu",
    ),
    Opt(
        "typing",
        "TensorRT typing: auto (weak <= 10, strong on 11), weak (builder flags), strong (ONNX)",
        "str",
        ("auto", "weak", "strong"),
        parse=P.one_of(("auto", "weak", "strong")),
        default="auto",
    ),
    Opt(
        "tf32", "allow TF32 for fp32 (TensorRT and torch)", "str", ("on", "off"), parse=P.on_off, default=True
    ),
    Opt("workspace-mb", "TensorRT workspace memory-pool limit in MiB", "int", parse=P.number(int, 1)),
    Opt("timing-iterations", "TensorRT avg_timing_iterations", "int", parse=P.number(int, 1)),
    Opt("aux-streams", "TensorRT max_aux_streams", "int", parse=P.number(int, 0)),
    Opt(
        "compute-capability",
        "GPU architecture TensorRT-RTX builds for, as MAJOR.MINOR (8.9) or 'current'; default: the local "
        "GPU's, or 8.9 on a machine without one (plans are then built, not run)",
        parse=P.compute_capability,
        default=local_compute_capability,
    ),
    Opt(
        "hardware-compat",
        "TensorRT hardware compatibility level",
        "str",
        ("none", "ampere_plus", "same_compute_capability"),
        parse=P.one_of(("none", "ampere_plus", "same_compute_capability")),
    ),
    Opt(
        "version-compatible",
        "build version-compatible TensorRT plans (needs --trt-allow-host-code)",
        "flag",
        parse=P.flag,
        default=False,
    ),
    Opt(
        "allow-host-code",
        "allow loading plans that embed host code (lean runtime)",
        "flag",
        parse=P.flag,
        default=False,
    ),
    Opt(
        "no-timing-cache",
        "do not use the persistent TensorRT timing cache",
        "flag",
        parse=P.not_flag,
        default=True,
        field="timing_cache",
    ),
    Opt(
        "recipe-tool",
        "graph-recipe converter: auto (ModelOpt if installed), modelopt, ort",
        "str",
        ("auto", "modelopt", "ort"),
        parse=P.one_of(("auto", "modelopt", "ort")),
        default="auto",
    ),
    Opt(
        "on-build-failure",
        "what a failed build does to its test",
        "str",
        ("fail", "skip"),
        parse=P.one_of(("fail", "skip")),
        default="fail",
    ),
    Opt(
        "gate",
        "quality gate PRECISION:METRIC>=VALUE (repeatable; '*:' for all precisions)",
        "append",
        parse=P.gates,
        default={},
        field="gates",
    ),
    Opt(
        "baseline",
        "pytest-benchmark JSON to gate this run against (same rule as `pytest-trt compare`)",
        metavar="FILE",
        parse=P.path,
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
        parse=P.number(float, 0.001),
        default=30.0,
    ),
    Opt(
        "frames",
        "frames timed per real-time case (default GPU 300, CPU 40)",
        "int",
        parse=P.number(int, 1),
        default=machine(300, 40),
    ),
    Opt(
        "power-mode",
        "Jetson power mode(s) this run is meant for; other modes skip",
        "csv",
        parse=P.ints(0),
        field="power_modes",
    ),
    Opt(
        "lock-clocks",
        "lock GPU clocks through NVML for the session: max | base | MHZ (restored after)",
        parse=P.lock_clocks,
    ),
    Opt(
        "json",
        "write every case's record (also failed and skipped ones) to this file",
        metavar="FILE",
        parse=P.path,
        field="json_path",
    ),
    Opt(
        "shard",
        "run only shard I of N of the collected tests (deterministic: one CI runner per shard)",
        metavar="I/N",
        parse=P.shard,
    ),
    Opt(
        "claim-dir",
        "share the collected tests with other pytest processes through this directory: each engine group "
        "runs in the first process to claim it (used by `pytest-trt run --gpus`)",
        metavar="DIR",
        parse=P.path,
    ),
    Opt(
        "claim-rank",
        "with --trt-claim-dir: this process's place in the shared queue (pairs of processes take their "
        "share from both ends and meet in the middle), so each sets up about 1/N of the models",
        metavar="I/N",
        parse=P.shard,
    ),
)

_BY_NAME = {o.name: o for o in OPTIONS}


def addoptions(parser: pytest.Parser) -> None:
    group = parser.getgroup("trt", "pytest-trt: inference engine benchmarks")
    for o in OPTIONS:
        choices = f" ({', '.join(o.listed_choices())})" if o.choices else ""
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
