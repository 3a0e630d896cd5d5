"""The resolved options of a session: :class:`Settings`, made by :func:`resolve` in one loop over the
option table (:mod:`pytest_trt.plugin.options`), then the checks that involve several options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_trt.engines.protocol import BuildSpec
from pytest_trt.hardware.device import Device, DeviceError, resolve_device
from pytest_trt.plugin.options import OPTIONS, Machine, raw
from pytest_trt.plugin.parsers import usage
from pytest_trt.quality.gates import Gate


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
    extra_time: float
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
    int8_exclude: str
    seed: int
    cuda_graph: str
    isolate: str
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
    batch_axis: dict[str, int | None] = field(default_factory=dict)  # where named tensors hold the batch
    input_values: dict[str, float] = field(default_factory=dict)  # inputs filled with one number
    onnx_task: str = "generic"
    onnx_trained: bool = True
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
            int8_exclude=self.int8_exclude,
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
    given = {o.name: raw(config, o.name) for o in OPTIONS}
    try:
        device = resolve_device(given["device"])
    except DeviceError as exc:
        raise usage("device", given["device"], str(exc)) from None
    where = Machine(device)
    values = {o.attr: o.value(given[o.name], where) for o in OPTIONS if o.name != "device"}
    _merge_opt_shapes(values["shapes"], values.pop("opt_shapes"))
    s = Settings(device=device, explicit={k for k, v in given.items() if v is not None}, **values)
    _check_shape_pairs(s)
    _check(s)
    return s


def _merge_opt_shapes(shapes: dict[str, tuple[int, ...]], opt: dict[str, tuple[int, ...]]) -> None:
    """--trt-opt-shapes joins --trt-shapes: both give the opt shapes."""
    for name, shape in opt.items():
        if name in shapes and shapes[name] != shape:
            raise usage("opt-shapes", name, f"--trt-shapes already gives {name} another shape")
        shapes[name] = shape


def _check_shape_pairs(s: Settings) -> None:
    """Min and max shapes come in pairs, min <= max axis by axis."""
    lo, hi = s.min_shapes, s.max_shapes
    if set(lo) != set(hi):
        odd = sorted(set(lo) ^ set(hi))
        raise usage(
            "min-shapes", ",".join(odd), "give both --trt-min-shapes and --trt-max-shapes for each input"
        )
    for name in lo:
        if len(lo[name]) != len(hi[name]) or any(a > b for a, b in zip(lo[name], hi[name], strict=False)):
            raise usage("min-shapes", name, f"min {lo[name]} must not exceed max {hi[name]}, axis by axis")


def _check(s: Settings) -> None:
    """The checks that involve more than one option, or the file system."""
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
    if s.dataset and s.dataset.startswith("coco:"):
        from pytest_trt.models import coco_data

        try:
            coco_data.parse_spec(s.dataset)
        except coco_data.CocoDataError as exc:
            raise usage("dataset", s.dataset, str(exc).removeprefix("--trt-dataset: ")) from None
    elif s.dataset and s.dataset != "digits" and not Path(s.dataset).expanduser().is_dir():
        raise usage(
            "dataset",
            s.dataset,
            "no such directory: pass an ImageFolder root (<root>/<class>/<image>), 'digits', or "
            "coco:ANNOTATIONS.json:IMAGES_DIR",
        )
