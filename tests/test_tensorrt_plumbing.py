"""TensorRT backend plumbing against the recording double, per version family (8.6 / 10.x / 11.x).

These tests pin down the exact builder calls for fp32/fp16/int8 x static/dynamic x opt level; the
real-TensorRT contract tests live in tests/gpu/ and skip where TensorRT cannot be imported.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from pytest_trt.cache import ArtifactCache, content_key
from pytest_trt.engines.protocol import BuildFailed, BuildSpec, Unsupported
from pytest_trt.engines.tensorrt import backend as tb
from pytest_trt.engines.tensorrt import versions
from pytest_trt.models import zoo
from pytest_trt.models.datasets import synthetic
from pytest_trt.models.export import ExportSettings, export_onnx
from tests.trt_double import make_double

FAMILIES = {"8.6": "8.6.1", "10": "10.13.0.35", "11": "11.4.0.106"}


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    cache = ArtifactCache(tmp_path_factory.mktemp("cache"))
    spec = zoo.get("tinycnn")
    model, src = zoo.load_model(spec, "random", 0)
    dyn = export_onnx(cache, spec, model, src, ExportSettings(dynamic_batch=True))
    sta = export_onnx(cache, spec, model, src, ExportSettings(dynamic_batch=False, static_batch=1))
    return {"dynamic": dyn.path, "static": sta.path}


@pytest.fixture
def bind(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def _bind(version: str, **kw: object) -> types.ModuleType:
        double = make_double(version, **kw)  # type: ignore[arg-type]
        monkeypatch.setattr(versions, "trt", double)
        return double

    return _bind


@pytest.mark.parametrize(
    ("family", "precision", "typing", "expect"),
    [
        ("8.6", "fp32", "auto", ("trt8.6-weak-fp32", (), None)),
        ("8.6", "fp16", "auto", ("trt8.6-weak-fp16", ("FP16",), None)),
        ("8.6", "int8", "auto", ("trt8.6-weak-int8", ("INT8",), "IInt8EntropyCalibrator2")),
        ("10", "fp16", "auto", ("trt10-weak-fp16", ("FP16",), None)),
        ("10", "bf16", "weak", ("trt10-weak-bf16", ("BF16",), None)),
        ("10", "int8", "strong", ("trt10-strong-onnx-qdq-int8-minmax-fbias", (), None)),
        ("10", "fp16", "strong", ("trt10-strong-onnx-fp16-keepio", (), None)),
        ("11", "fp32", "auto", ("trt11-strong-fp32", (), None)),
        ("11", "fp16", "auto", ("trt11-strong-onnx-fp16-keepio", (), None)),
        ("11", "int8", "auto", ("trt11-strong-onnx-qdq-int8-minmax-fbias", (), None)),
    ],
)
def test_recipe_by_version(bind, family: str, precision: str, typing: str, expect: tuple) -> None:  # type: ignore[no-untyped-def]
    bind(FAMILIES[family])
    r = tb.choose_recipe(BuildSpec(precision=precision, typing=typing, recipe_tool="ort"), FAMILIES[family])
    assert (r.name, r.builder_flags, r.calibrator) == expect
    assert r.strongly_typed == (typing == "strong" or family == "11")


@pytest.mark.parametrize(
    ("family", "precision", "typing", "reason"),
    [
        ("8.6", "bf16", "auto", "no BuilderFlag.BF16"),
        ("8.6", "fp16", "strong", "no strongly typed networks"),
        ("11", "fp16", "weak", "removed weak typing"),
        ("11", "bf16", "auto", "ModelOpt"),  # bf16 graphs need AutoCast, not installed here
    ],
)
def test_recipe_refusals_are_reasons(bind, family: str, precision: str, typing: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    bind(FAMILIES[family])
    with pytest.raises(Unsupported, match=reason):
        tb.choose_recipe(BuildSpec(precision=precision, typing=typing, recipe_tool="ort"), FAMILIES[family])


def _build(
    double: types.ModuleType, onnx_path: Path, spec: BuildSpec, tmp_path: Path, quiet: bool = True
) -> dict:  # type: ignore[type-arg]
    recipe = tb.choose_recipe(spec, double.__version__)
    calib = synthetic((3, 32, 32), 8, 1) if recipe.calibrator else None
    cache = ArtifactCache(tmp_path / "c")
    return tb.build_plan(
        onnx_path,
        tmp_path / "plan.tmp",
        spec,
        recipe,
        zoo.get("tinycnn"),
        cache=cache,
        timing_cache_key={"trt": double.__version__},
        calibration=calib,
        calib_cache_path=tmp_path / "calib.cache" if calib is not None else None,
        quiet=quiet,
    )


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("profile", ["static", "dynamic"])
@pytest.mark.parametrize("opt", [0, 3, 5])
def test_builder_calls(
    bind, onnx_files, tmp_path, family: str, precision: str, profile: str, opt: int
) -> None:  # type: ignore[no-untyped-def]
    double = bind(FAMILIES[family])
    spec = BuildSpec(precision=precision, profile=profile, batch=1, opt_level=opt, recipe_tool="ort")
    recipe = tb.choose_recipe(spec, double.__version__)
    # The strongly typed 11.x int8/fp16 recipes are ONNX rewrites; the builder sees the exported graph here.
    facts = _build(double, onnx_files[profile], spec, tmp_path)
    R = double.recorder
    net_flags = R.find("create_network")[0][0]
    if family == "8.6":
        assert net_flags == 1 << int(double.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    elif family == "10":
        assert net_flags == (
            1 << int(double.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if recipe.strongly_typed else 0
        )
    else:
        assert net_flags == 0  # 11.x: always strongly typed, no flag needed (and STRONGLY_TYPED == 0 there)
    assert ("config.builder_optimization_level", (opt,)) in R.calls
    assert ("config.profiling_verbosity", (double.ProfilingVerbosity.DETAILED,)) in R.calls
    flags_set = [a[0] for a in R.find("config.set_flag")]
    assert flags_set == list(recipe.builder_flags)
    if family == "11":
        assert not any(f in flags_set for f in ("FP16", "INT8", "BF16"))
    shapes = R.find("profile.set_shape")
    if profile == "dynamic":
        assert shapes == [("input", (1, 3, 32, 32), (128, 3, 32, 32), (256, 3, 32, 32))]
        assert "config.add_optimization_profile" in R.names()
    else:
        assert shapes == []  # static ONNX: TensorRT makes its own profile
    calib_set = R.find("config.int8_calibrator")
    if recipe.calibrator:
        assert calib_set == [("IInt8EntropyCalibrator2",)]
        assert ("config.set_calibration_profile" in R.names()) == (profile == "dynamic")
    else:
        assert calib_set == []
    assert R.find("config.create_timing_cache") == [(0,)]
    assert R.names()[-1] == "build_serialized_network"
    assert facts["trt_version"] == FAMILIES[family]
    assert facts["build_warnings"] == ["dynamic dimension with minimum 0 (double's warning)"]
    assert (tmp_path / "plan.tmp").read_bytes().startswith(b"PLAN:")


def test_builder_settings_are_applied(bind, onnx_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    double = bind(FAMILIES["10"])
    spec = BuildSpec(
        workspace_mb=512,
        avg_timing_iterations=4,
        max_aux_streams=0,
        hardware_compat="ampere_plus",
        version_compatible=True,
        allow_host_code=True,
        tf32=False,
    )
    _build(double, onnx_files["dynamic"], spec, tmp_path)
    R = double.recorder
    assert ("config.set_memory_pool_limit", ("WORKSPACE", 512 << 20)) in R.calls
    assert ("config.avg_timing_iterations", (4,)) in R.calls
    assert ("config.max_aux_streams", (0,)) in R.calls
    assert (
        "config.hardware_compatibility_level",
        (double.HardwareCompatibilityLevel.AMPERE_PLUS,),
    ) in R.calls
    assert ("config.set_flag", ("VERSION_COMPATIBLE",)) in R.calls
    assert ("config.clear_flag", ("TF32",)) in R.calls


def test_hardware_compat_level_missing_on_86(bind, onnx_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    double = bind(FAMILIES["8.6"])
    with pytest.raises(Unsupported, match="SAME_COMPUTE_CAPABILITY"):
        _build(double, onnx_files["dynamic"], BuildSpec(hardware_compat="same_compute_capability"), tmp_path)


def test_progress_monitor_only_where_it_exists(bind, onnx_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for fam, expected in (("8.6", False), ("11", True)):
        double = bind(FAMILIES[fam])
        _build(double, onnx_files["dynamic"], BuildSpec(), tmp_path / fam, quiet=False)
        assert ("config.progress_monitor" in double.recorder.names()) is expected


def test_build_failure_carries_logger_errors(bind, onnx_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    double = bind(FAMILIES["10"], fail_build="Error: out of memory allocating 80 GiB for tactic")
    with pytest.raises(BuildFailed) as ei:
        _build(double, onnx_files["dynamic"], BuildSpec(opt_level=5), tmp_path)
    assert ei.value.oom
    assert "out of memory" in str(ei.value) and ei.value.log


def test_parse_failure_names_the_operator(bind, onnx_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    double = bind(FAMILIES["11"], fail_parse=True)
    with pytest.raises(BuildFailed, match="FancyOp"):
        _build(double, onnx_files["dynamic"], BuildSpec(), tmp_path)


@pytest.mark.parametrize(("family", "mem"), [("8.6", 2048), ("10", 4096), ("11", 4096)])
def test_engine_facts_memory_api_by_version(bind, tmp_path, family: str, mem: int) -> None:  # type: ignore[no-untyped-def]
    double = bind(FAMILIES[family])
    facts = tb.engine_facts(double.FakeEngine(), tmp_path / "layers.json")
    assert facts["device_memory_bytes"] == mem
    assert facts["layers"] == 7 and facts["inspector_layers"] == 2
    assert facts["engine_params"] == 104
    assert (tmp_path / "layers.json").exists()


def test_plan_key_changes_with_version_and_gpu(bind) -> None:  # type: ignore[no-untyped-def]
    keys = set()
    for ver in ("10.13.0.35", "11.4.0.106"):
        for gpu in ("NVIDIA H100", "NVIDIA A100"):
            double = bind(ver)
            parts = {"onnx": "abc", "build": BuildSpec().key(), "trt_version": double.__version__, "gpu": gpu}
            keys.add(content_key(parts))
    assert len(keys) == 4


def test_stub_namespace_is_not_tensorrt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # tensorrt-stubs installed with --no-deps: `import tensorrt` succeeds as an empty namespace package.
    (tmp_path / "trt_stub_ns").mkdir()
    (tmp_path / "trt_stub_ns" / "__init__.pyi").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(versions, "trt", None)
    with pytest.raises(tb.TensorRTUnavailable, match="no __version__/Builder"):
        tb.load_tensorrt("trt_stub_ns")
    sys.modules.pop("trt_stub_ns", None)


def test_family_and_version_parsing() -> None:
    assert [tb.family(v) for v in ("8.6.1.6", "10.0.1", "10.16.0", "11.1.0.106", "12.0")] == [
        "8.6",
        "10",
        "10",
        "11",
        "11",
    ]
    assert tb.version_tuple("11") == (11, 0)
    assert np.isfinite(1.0)


def test_engine_binds_every_input_in_graph_order_with_its_own_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine lists its inputs in its own order; feeds are positional in the ONNX graph's order,
    and each input is fed as the engine declares it (8.6 turns int64 ids into int32)."""
    import torch

    from pytest_trt.engines.protocol import Device, EngineInfo
    from pytest_trt.engines.recipes import Recipe

    ns = types.SimpleNamespace(
        TensorIOMode=types.SimpleNamespace(INPUT="in", OUTPUT="out"),
        float32="f32",
        float16="f16",
        int8="i8",
        int32="i32",
        bool="b",
        uint8="u8",
    )
    monkeypatch.setattr(versions, "trt", ns)
    io = {"ids": ("in", "i32"), "feats": ("in", "f32"), "logits": ("out", "f32")}

    class Context:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple[int, ...]] = {}
            self.addresses: dict[str, int] = {}

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            self.shapes[name] = shape
            return True

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            self.addresses[name] = ptr
            return True

        def infer_shapes(self) -> list[str]:
            return []

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return (self.shapes["feats"][0], 4)

    class Engine:
        num_io_tensors = 3
        ctx = Context()

        def get_tensor_name(self, i: int) -> str:
            return list(io)[i]

        def get_tensor_mode(self, name: str) -> str:
            return io[name][0]

        def get_tensor_dtype(self, name: str) -> str:
            return io[name][1]

        def create_execution_context(self) -> Context:
            return self.ctx

    eng = tb.TrtEngine(
        Engine(),
        Device("cpu"),
        EngineInfo("tensorrt", "8.6.1", Recipe("fp32", "fp32")),
        None,
        ["feats", "ids"],
    )
    assert eng.inputs == ["feats", "ids"]
    feats = np.zeros((2, 12, 8), np.float32)
    ids = np.ones((2, 12), np.int64)
    feed = eng.make_feed([feats, ids])
    assert [d.dtype for d in feed.devs] == [torch.float32, torch.int32]
    eng._bind(feed)
    assert Engine.ctx.shapes == {"feats": (2, 12, 8), "ids": (2, 12)}
    assert Engine.ctx.addresses["ids"] == feed.devs[1].data_ptr() and "logits" in Engine.ctx.addresses
    with pytest.raises(RuntimeError, match=r"takes 2 inputs \(\['feats', 'ids'\]\); 1 fed"):
        eng._bind(eng.make_feed(feats))
