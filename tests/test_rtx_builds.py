"""Real TensorRT builds on a CPU-only machine, through TensorRT-RTX (``pip install '.[rtx]'``).

TensorRT-RTX compiles for named GPU architectures, so its builder runs here for real: these tests
exercise the very network/profile/config code the ``tensorrt`` backend runs (``build_plan``,
``configure_builder``, ``parse_onnx``) and assert on what the real parser and builder said.
Deserializing a plan needs a CUDA driver, so nothing here is timed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import TensorProto, helper

from pytest_trt.cache import ArtifactCache
from pytest_trt.engines.protocol import BuildFailed, BuildSpec
from pytest_trt.engines.recipes import apply_graph_recipe, graph_recipe
from pytest_trt.models import datasets, zoo
from pytest_trt.models.export import ExportSettings, OnnxModel, export_onnx
from tests.conftest import fast_args, load_json

try:
    from pytest_trt.engines.tensorrt import backend as tb

    trt = tb.load_tensorrt("tensorrt_rtx")
except Exception as exc:  # the reason becomes the skip message
    pytest.skip(f"needs TensorRT-RTX (pip install '.[rtx]'): {exc}", allow_module_level=True)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> ArtifactCache:
    return ArtifactCache(tmp_path_factory.mktemp("rtx-cache"))


def _onnx(cache: ArtifactCache, name: str, **es: Any) -> OnnxModel:
    spec = zoo.get(name)
    module, source = zoo.load_model(spec, "random", 0)
    return export_onnx(cache, spec, module, source, ExportSettings(**es))


def _build(path: Path, tmp_path: Path, model: str, **spec: Any) -> tuple[int, dict[str, Any]]:
    bs = BuildSpec(typing="strong", compute_capability="8.9", **spec)
    recipe = tb.choose_recipe(bs, trt.__version__)
    out = tmp_path / f"{model}-{recipe.name}.plan"
    facts = tb.build_plan(
        path,
        out,
        bs,
        recipe,
        zoo.get(model),
        cache=None,
        timing_cache_key=None,
        calibration=None,
        calib_cache_path=None,
    )
    return out.stat().st_size, facts


@pytest.mark.parametrize("profile", ["static", "dynamic"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_every_recipe_builds_a_real_plan(
    cache: ArtifactCache, tmp_path: Path, precision: str, profile: str
) -> None:
    base = _onnx(cache, "tinycnn", dynamic_batch=profile == "dynamic", static_batch=4)
    bs = BuildSpec(precision=precision, profile=profile, batch=4, batch_range=(1, 4, 16), typing="strong")
    recipe = tb.choose_recipe(bs, trt.__version__)
    calib = datasets.synthetic((3, 32, 32), 8, 1) if precision == "int8" else None
    graph = apply_graph_recipe(cache, base, recipe, calib)
    size, facts = _build(graph.path, tmp_path, "tinycnn", precision=precision, profile=profile, batch=4,
                         batch_range=(1, 4, 16))  # fmt: skip
    assert size > 10_000 and facts["trt_version"] == trt.__version__ and facts["network_layers"] > 0
    assert recipe.strongly_typed and (precision != "int8" or recipe.details["bias"] == "float")


@pytest.mark.parametrize("opt", [0, 5])
def test_resnet18_and_a_segmentation_model_build(cache: ArtifactCache, tmp_path: Path, opt: int) -> None:
    r18 = _onnx(cache, "resnet18", dynamic_batch=True)
    size, facts = _build(
        r18.path, tmp_path, "resnet18", profile="dynamic", batch_range=(1, 8, 32), opt_level=opt
    )
    assert size > 10_000_000  # 11.7 M fp32 weights live in the plan
    seg = _onnx(cache, "lraspp_mobilenet_v3_large", dynamic_batch=True, dynamic_hw=True, hw=128)
    size, facts = _build(seg.path, tmp_path, "lraspp_mobilenet_v3_large", profile="dynamic",
                         batch_range=(1, 2, 4), hw_range=(64, 128, 256), opt_level=opt)  # fmt: skip
    assert size > 0 and facts["network_layers"] > 10


def test_onnxruntimes_int32_biases_are_refused_by_the_real_parser(
    cache: ArtifactCache, tmp_path: Path
) -> None:
    """Why the TensorRT recipes keep biases in float: the parser's own message."""
    base = _onnx(cache, "tinycnn", dynamic_batch=True)
    ort_graph = apply_graph_recipe(
        cache, base, graph_recipe("int8", prefer="ort"), datasets.synthetic((3, 32, 32), 8, 1)
    )
    with pytest.raises(BuildFailed, match=r"DequantizeLinear.*must have type FP8, FP4, Int4, Int8, or UInt8"):
        _build(ort_graph.path, tmp_path, "tinycnn", precision="int8", batch_range=(1, 4, 16))


def test_unsupported_operator_is_rejected_with_the_parsers_message(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3, 32, 32])
    node = helper.make_node("FancyOp", ["input"], ["output"], domain="com.example")
    model = helper.make_model(
        helper.make_graph([node], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)],
    )
    path = tmp_path / "fancy.onnx"
    onnx.save(model, str(path))
    with pytest.raises(BuildFailed, match=r"could not parse fancy.onnx: .*FancyOp") as info:
        _build(path, tmp_path, "tinycnn", batch_range=(1, 4, 16))
    assert info.value.log  # the parser's errors are kept for the result's build_log


def test_impossible_profile_is_rejected_with_the_builders_message(
    cache: ArtifactCache, tmp_path: Path
) -> None:
    base = _onnx(cache, "tinycnn", dynamic_batch=True)
    with pytest.raises(BuildFailed, match=r"rejected the optimization profile .*addOptimizationProfile"):
        _build(base.path, tmp_path, "tinycnn", batch_range=(8, 4, 1))


def test_unknown_compute_capability_names_the_known_ones(cache: ArtifactCache, tmp_path: Path) -> None:
    base = _onnx(cache, "tinycnn", dynamic_batch=True)
    bs = BuildSpec(typing="strong", compute_capability="4.2", batch_range=(1, 4, 16))
    with pytest.raises(tb.Unsupported, match=r"cannot build for compute capability 4.2; it knows .*SM89"):
        tb.build_plan(base.path, tmp_path / "x.plan", bs, tb.choose_recipe(bs, trt.__version__), zoo.get("tinycnn"),
                      cache=None, timing_cache_key=None, calibration=None, calib_cache_path=None)  # fmt: skip


def test_benchmarks_report_built_cases_with_real_build_facts(
    pytester: pytest.Pytester, shared_cache: Path
) -> None:
    pytester.makepyfile(
        test_b="""
import pytest

@pytest.mark.trt_matrix(models=["tinycnn"], batches=[1, 8], backends=["tensorrt_rtx"], precisions=["fp32", "fp16", "int8"])
def test_b(trt_run):
    trt_run.run()
"""
    )
    out = pytester.path / "r.json"
    result = pytester.runpytest_inprocess(
        *fast_args(shared_cache, "--trt-profile=static,dynamic", f"--trt-json={out}")
    )
    result.assert_outcomes(skipped=12)  # built, not runnable: never a failure for lack of a GPU
    cases = load_json(out)["cases"]
    assert len(cases) == 12 and {c["status"] for c in cases} == {"built"}
    for c in cases:
        engine = c["extra_info"]["engine"]
        assert engine["plan_bytes"] > 0 and engine["build_seconds"] > 0 and engine["runnable"] is False
        assert engine["compute_capability"] == "8.9" and "latency_ms" not in c["extra_info"]
    result.stdout.fnmatch_lines(["*tinycnn-tensorrt_rtx-fp32-dynamic-b1-opt3*built*"])


def test_building_without_a_gpu_keeps_every_other_check() -> None:
    from pytest_trt.engines.protocol import Device
    from pytest_trt.engines.tensorrt.backend import TensorRTBackend, TensorRTRTXBackend

    rtx, cpu, tiny = TensorRTRTXBackend(), Device("cpu"), zoo.get("tinycnn")
    assert rtx.unsupported(BuildSpec(precision="int8"), tiny, cpu) is None  # built ahead of time
    refused = rtx.unsupported(BuildSpec(version_compatible=True), tiny, cpu)
    assert refused is not None and "--trt-allow-host-code" in refused
    assert "strongly typed only" in str(rtx.unsupported(BuildSpec(typing="weak"), tiny, cpu))
    assert not TensorRTBackend.builds_without_gpu and rtx.builds_without_gpu


def test_a_users_two_input_graph_builds_with_its_own_profile(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """A user's ONNX file (two inputs, int64 ids, a dynamic sequence axis) through --trt-onnx with
    trtexec-style min/opt/max shapes: the real builder accepts the profile for every precision."""
    from tests.test_user_models import export_two_in

    path = export_two_in(tmp_path / "two_in.onnx")
    out = tmp_path / "rtx.json"
    r = pytester.runpytest(
        *fast_args(tmp_path / "cache"),
        f"--trt-onnx={path}",
        "--trt-min-shapes=feats:1x4x8,ids:1x4",
        "--trt-shapes=feats:8x16x8,ids:8x16",
        "--trt-max-shapes=feats:32x64x8,ids:32x64",
        "--trt-backend=tensorrt_rtx",
        "--trt-precision=fp32,fp16,int8",
        f"--trt-json={out}",
    )
    r.assert_outcomes(skipped=3)
    cases = load_json(out)["cases"]
    assert {c["status"] for c in cases} == {"built"}
    assert all(c["extra_info"]["engine"]["plan_bytes"] > 10_000 for c in cases)


def test_an_op_tensorrt_lacks_is_the_parsers_message(pytester: pytest.Pytester, tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")], "g", [x], [y]
        ),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)],
    )
    path = tmp_path / "custom.onnx"
    onnx.save_model(model, str(path))
    out = tmp_path / "rtx.json"
    r = pytester.runpytest(
        *fast_args(tmp_path / "cache"), f"--trt-onnx={path}", "--trt-backend=tensorrt_rtx", "--trt-precision=fp32",
        "--trt-batch=2", f"--trt-json={out}",
    )  # fmt: skip
    r.assert_outcomes(failed=1)
    (case,) = load_json(out)["cases"]
    assert case["status"] == "build_failed"
    assert "TensorRT could not parse custom.onnx" in case["message"] and "Frobnicate" in case["message"]


def test_every_yolov8_recipe_is_built_by_the_real_builder(
    pytester: pytest.Pytester, shared_cache: Path
) -> None:
    """YOLOv8n-seg (the op set of every YOLOv8 detector and segmenter) with a dynamic H/W profile: fp32,
    the fp16 graph and the int8 Q/DQ graph are accepted by the parser and built, with the plans' facts."""
    pytester.makepyfile(
        test_y="""
import pytest

@pytest.mark.trt_matrix(models=["yolov8n_seg"], hws=[320], batches=[1], dynamic_hw=True,
                        backends=["tensorrt_rtx"], precisions=["fp32", "fp16", "int8"])
def test_y(trt_run):
    trt_run.run()
"""
    )
    out = pytester.path / "y.json"
    # every layer in int8: the parser sees Q/DQ around each of YOLOv8's ops (and the sensitivity pass,
    # which only chooses layers to keep in float, does not quantize the graph once per layer here)
    result = pytester.runpytest_inprocess(
        *fast_args(shared_cache, "--trt-profile=dynamic", f"--trt-json={out}", "--trt-int8-exclude=none")
    )
    result.assert_outcomes(skipped=3)
    cases = {c["extra_info"]["precision"]: c for c in load_json(out)["cases"]}
    assert {c["status"] for c in cases.values()} == {"built"}
    plans = {p: c["extra_info"]["engine"]["plan_bytes"] for p, c in cases.items()}
    assert plans["fp16"] < plans["fp32"]  # half the weight bytes
    assert cases["int8"]["extra_info"]["recipe"]["graph"] == "qdq-int8"
