"""Every input shape a real model has, on a trained model from outside the project: Silero's voice
activity detector (shipped as ONNX files by the ``silero-vad`` package), whose inputs are audio
``input: float32[N, S]``, a recurrent ``state: float32[2, N, 128]`` (the batch on axis 1) and a scalar
sample rate ``sr: int64[]``, and whose outputs are the speech probability and the next state.

Run as the README says (``pytest --trt-onnx FILE --trt-shapes ... --trt-input-value sr:16000``):
where the graph names its batch axis the layout is read from it; where it does not, ``--trt-batch-axis``
says it.  Honest engines pass at batch 1 and 4, static and dynamic; corrupted ones fail.
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
_spec = importlib.util.find_spec("silero_vad")  # found, not imported: the package imports torchaudio
DATA = Path(next(iter(_spec.submodule_search_locations or [""]))) / "data" if _spec else None
pytestmark = pytest.mark.skipif(
    DATA is None or not (DATA / "silero_vad_op18_ifless.onnx").exists(),
    reason="the Silero VAD ONNX files come from silero-vad: pip install --no-deps silero-vad==6.2.3 "
    "(make venv does)",
)
CONFTEST = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from tests import fault_backend

def pytest_trt_register_backends(register):
    fault_backend.register_all(register)
"""
NAMED = "silero_vad_op18_ifless.onnx"  # input[batch, sequence], state[2, batch, 128]: the graph says it
UNNAMED = "silero_vad.onnx"  # input[?, ?], state[2, ?, 128]: the user says it


def _pytest(where: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (where / "conftest.py").write_text(CONFTEST)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--trt-device=cpu",
           f"--trt-cache-dir={cache}", "--trt-max-time=0.2", "--trt-rounds=5", "--trt-target-ci=0", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=where, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def vad(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> dict[str, dict[str, Any]]:
    where = tmp_path_factory.mktemp("vad")
    assert DATA is not None
    _pytest(
        where, shared_cache,
        f"--trt-onnx={DATA / NAMED}", f"--trt-onnx={DATA / UNNAMED}", "--trt-shapes=input:1x512",
        "--trt-input-value=sr:16000", "--trt-batch-axis=state:1,stateN:1", "--trt-precision=fp32",
        "--trt-batch=1,4", "--trt-profile=static,dynamic",
        "--trt-backend=onnxruntime,openvino,faulty_mixup,faulty_noise,faulty_noise_last",
        f"--trt-json={where / 'run.json'}",
    )  # fmt: skip
    return {c["id"]: c for c in load_json(where / "run.json")["cases"]}


def _cases(vad: dict[str, dict[str, Any]], model: str, backend: str) -> list[dict[str, Any]]:
    found = [c for c in vad.values() if c["id"].startswith(f"{model}-{backend}-")]
    assert found, f"no {model} {backend} case in {sorted(vad)}"
    return found


def _failed(case: dict[str, Any]) -> set[str]:
    return {g["gate"] for g in case["extra_info"]["quality"]["gates"] if not g["passed"]}


@pytest.mark.parametrize("model", [NAMED, UNNAMED])
def test_an_honest_stateful_model_passes_on_onnxruntime_at_every_batch_and_profile(
    vad: dict[str, dict[str, Any]], model: str
) -> None:
    cases = _cases(vad, model, "onnxruntime")
    assert {c["extra_info"]["batch"] for c in cases} == {1, 4}
    for c in cases:
        assert c["status"] == "ok", (
            c["id"],
            c.get("message"),
            _failed(c) if "quality" in c["extra_info"] else "",
        )


def test_openvino_runs_the_graph_it_can_convert(vad: dict[str, dict[str, Any]]) -> None:
    for c in _cases(vad, NAMED, "openvino"):
        assert c["status"] == "ok", (c["id"], c.get("message"))


def test_a_graph_openvino_cannot_convert_is_a_reported_build_failure(vad: dict[str, dict[str, Any]]) -> None:
    """The unnamed variant's If branches leave Conv ranks unknown to OpenVINO's ONNX frontend."""
    for c in _cases(vad, UNNAMED, "openvino"):
        assert c["status"] == "build_failed" and "openvino could not compile" in c["message"]


@pytest.mark.parametrize("backend", ["faulty_mixup", "faulty_noise", "faulty_noise_last"])
@pytest.mark.parametrize("model", [NAMED, UNNAMED])
def test_a_corrupted_stateful_engine_fails(vad: dict[str, dict[str, Any]], model: str, backend: str) -> None:
    """Mixed-up speech probabilities, noise on them, or noise on the next state (the last output)."""
    for c in _cases(vad, model, backend):
        assert c["status"] == "quality_failed", (c["id"], c["status"], c.get("message"))


def test_int8_of_a_graph_whose_state_holds_the_batch_elsewhere_is_skipped_with_the_reason(
    tmp_path: Path, shared_cache: Path
) -> None:
    assert DATA is not None
    run = _pytest(
        tmp_path, shared_cache, f"--trt-onnx={DATA / NAMED}", "--trt-shapes=input:1x512",
        "--trt-input-value=sr:16000", "--trt-precision=int8", "--trt-backend=onnxruntime",
        "-rs", "--benchmark-disable",
    )  # fmt: skip
    assert "int8 calibration feeds every input batch first" in run.stdout
    assert run.returncode == 5, run.stdout[-2000:]  # nothing measured: not a success


def _refused(tmp_path: Path, cache: Path, model: str, *args: str) -> str:
    """A run of ``model`` that must stop before anything runs (exit 4, no traceback); its stderr."""
    assert DATA is not None
    run = _pytest(
        tmp_path, cache, f"--trt-onnx={DATA / model}", "--trt-shapes=input:1x512", "--trt-backend=onnxruntime",
        "--benchmark-disable", *args,
    )  # fmt: skip
    assert run.returncode == 4 and "Traceback" not in run.stderr, run.stderr[-2000:]
    return run.stderr


def test_a_misread_batch_axis_is_a_usage_error_that_names_the_option(
    tmp_path: Path, shared_cache: Path
) -> None:
    assert "--trt-batch-axis state:1" in _refused(
        tmp_path, shared_cache, UNNAMED, "--trt-input-value=sr:16000"
    )


def test_a_scalar_mode_input_without_a_value_asks_for_one(tmp_path: Path, shared_cache: Path) -> None:
    assert "--trt-input-value sr:VALUE" in _refused(tmp_path, shared_cache, NAMED)
