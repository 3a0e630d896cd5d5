"""Verdicts on trained models from outside the project: PP-OCRv4's text detector (a Sigmoid probability
map, almost all ~0 on inputs without text) and text recognizer (a 6,625-way Softmax per time step),
shipped as ONNX files by the ``rapidocr-onnxruntime`` package and run exactly as the README says
(``pytest --trt-onnx FILE --trt-shapes ...``).  Honest engines must pass on both CPU backends; the
corruptions of ``tests/fault_backend.py`` must fail where they change the outputs by more than the
recipe's own rounding.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_json

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.find_spec("rapidocr_onnxruntime")
MODELS = Path(_spec.origin).parent / "models" if _spec and _spec.origin else None
pytestmark = pytest.mark.skipif(
    MODELS is None or not (MODELS / "ch_PP-OCRv4_det_infer.onnx").exists(),
    reason="the PP-OCRv4 ONNX files come from rapidocr-onnxruntime: pip install --no-deps "
    "rapidocr-onnxruntime==1.4.4 (make venv does)",
)
BACKENDS = "onnxruntime,openvino,faulty_mixup,faulty_noise,faulty_ov_mixup,faulty_ov_noise"
CONFTEST = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from tests import fault_backend

def pytest_trt_register_backends(register):
    fault_backend.register_all(register)
"""


def _run(where: Path, cache: Path, onnx: str, shapes: str) -> dict[str, dict[str, Any]]:
    """The README's own-model command on one file, with the corrupting backends beside the honest ones."""
    (where / "conftest.py").write_text(CONFTEST)
    out = where / "run.json"
    args = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--trt-device=cpu",
        f"--trt-onnx={MODELS / onnx}" if MODELS else "", f"--trt-shapes={shapes}", "--trt-precision=fp32,fp16",
        f"--trt-backend={BACKENDS}", f"--trt-cache-dir={cache}", f"--trt-json={out}", "--trt-max-time=0.3",
        "--trt-rounds=5", "--trt-target-ci=0",
    ]  # fmt: skip
    subprocess.run(args, cwd=where, capture_output=True, text=True, check=False)
    return {
        f"{c['extra_info']['backend']}:{c['extra_info']['precision']}": c for c in load_json(out)["cases"]
    }


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> dict[str, dict[str, Any]]:
    return _run(tmp_path_factory.mktemp("rec"), shared_cache, "ch_PP-OCRv4_rec_infer.onnx", "x:1x3x48x160")


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> dict[str, dict[str, Any]]:
    return _run(tmp_path_factory.mktemp("det"), shared_cache, "ch_PP-OCRv4_det_infer.onnx", "x:1x3x96x96")


def _failed(case: dict[str, Any]) -> set[str]:
    return {g["gate"] for g in case["extra_info"]["quality"]["gates"] if not g["passed"]}


def _ran(cases: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    case = cases[key]
    if case["status"] == "skipped":
        pytest.skip(f"{key}: {case.get('message')}")
    return case


@pytest.mark.parametrize("key", ["onnxruntime:fp32", "onnxruntime:fp16", "openvino:fp32", "openvino:fp16"])
def test_an_honest_text_recognizer_passes(recognizer: dict[str, dict[str, Any]], key: str) -> None:
    case = _ran(recognizer, key)
    assert case["status"] == "ok", _failed(case)
    scale = case["extra_info"]["quality"]["closeness_scale"]
    assert scale["output_kind"] == "probability"  # read from the graph: its last op is a Softmax


@pytest.mark.parametrize("backend", ["faulty_mixup", "faulty_noise", "faulty_ov_mixup", "faulty_ov_noise"])
def test_a_corrupted_text_recognizer_fails(recognizer: dict[str, dict[str, Any]], backend: str) -> None:
    case = _ran(recognizer, f"{backend}:fp32")
    assert case["status"] == "quality_failed"
    expected = "sample_identity>=1" if "mixup" in backend else "ref_error_ratio<=2"
    assert expected in _failed(case)


@pytest.mark.parametrize("key", ["onnxruntime:fp32", "onnxruntime:fp16", "openvino:fp32"])
def test_an_honest_text_detector_passes_on_maps_that_are_almost_all_zero(
    detector: dict[str, dict[str, Any]], key: str
) -> None:
    case = _ran(detector, key)
    assert case["status"] == "ok", _failed(case)
    q = case["extra_info"]["quality"]
    assert q["closeness_scale"]["kind"] == "probability range"  # not p90 of a map of ~1e-7 values
    assert q["generic"]["near_zero_samples"] > 0  # judged by their error, not an unstable cosine


def test_openvino_fp16_of_the_text_detector_fails_and_names_the_constant_fp16_cannot_hold(
    detector: dict[str, dict[str, Any]],
) -> None:
    """PP-OCRv4's detector holds a BatchNorm variance of 9.8e7 in a Constant.  OpenVINO's native f16
    (a CPU with AVX512-FP16; skipped where it has no f16 kernels) cannot hold it and saturates about a
    quarter of the map to 1: a broken engine, which fails, and the report says why.  (onnxruntime's
    fp16 graph clamps the constant to 65504 and stays close.)"""
    case = _ran(detector, "openvino:fp16")
    assert case["status"] == "quality_failed"
    worst = case["extra_info"]["quality"]["fp16_range"]["constants"][0]
    assert (worst["tensor"], worst["op"]) == ("batch_norm_0.w_2", "BatchNormalization")


@pytest.mark.parametrize("backend", ["faulty_mixup", "faulty_ov_mixup"])
def test_a_detector_engine_that_mixes_up_samples_fails(
    detector: dict[str, dict[str, Any]], backend: str
) -> None:
    case = _ran(detector, f"{backend}:fp32")
    assert case["status"] == "quality_failed" and "sample_identity>=1" in _failed(case)


def test_noise_in_proportion_to_a_map_of_zeros_is_too_small_to_fail(
    detector: dict[str, dict[str, Any]],
) -> None:
    """5 % of the RMS of a map that is ~1e-7 everywhere: an error no threshold on the map could see,
    so it passes, with the figure that says why."""
    case = _ran(detector, "faulty_noise:fp32")
    assert case["status"] == "ok"
    assert case["extra_info"]["quality"]["errors"]["min_atol"] < 1e-6
