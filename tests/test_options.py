"""Option validation at configure time: invalid values are usage errors that list the valid ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import fast_args


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        (
            "--trt-precision=fp64",
            "*--trt-precision (ini trt_precision): invalid value 'fp64'; valid values: fp32, fp16, bf16, int8*",
        ),
        (
            "--trt-backend=tensorflow",
            "*invalid value 'tensorflow'; valid values: tensorrt, tensorrt_rtx, onnxruntime, openvino, torch*",
        ),
        ("--trt-profile=static,elastic", "*invalid value 'elastic'; valid values: static, dynamic*"),
        ("--trt-opt-level=6", "*--trt-opt-level*invalid value 6; expected integers 0-5*"),
        ("--trt-batch=0", "*--trt-batch*invalid value 0; expected integers >= 1*"),
        ("--trt-batch=two", "*--trt-batch*invalid value 'two'*"),
        ("--trt-dynamic-batch=8,4,16", "*expected min,opt,max with min <= opt <= max*"),
        ("--trt-cuda-graph=maybe", "*valid values: auto, on, off*"),
        ("--trt-weights=imagenet", "*valid values: auto, pretrained, random, file:PATH*"),
        ("--trt-gate=int8:closeness>>3", "*quality gate*expected METRIC>=VALUE*"),
        ("--trt-shard=2/2", "*--trt-shard '2/2': expected I/N with 0 <= I < N*"),
        ("--trt-dataset=/no/such/dir", "*--trt-dataset*no such directory*ImageFolder*"),
        ("--trt-baseline=/no/such.json", "*--trt-baseline*no such file*"),
        ("--trt-lock-clocks=fast", "*valid values: max, base, or a clock in MHz*"),
        (
            "--trt-compute-capability=ampere",
            "*--trt-compute-capability*expected MAJOR.MINOR (e.g. 8.9), SM89*",
        ),
    ],
)
def test_invalid_values_are_usage_errors(
    pytester: pytest.Pytester, bench_file: Path, shared_cache: Path, arg: str, message: str
) -> None:
    r = pytester.runpytest(*fast_args(shared_cache), arg, "--co")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines([message])


def test_ini_fallback_and_cli_precedence(
    pytester: pytest.Pytester, bench_file: Path, shared_cache: Path
) -> None:
    pytester.makeini("[pytest]\ntrt_precision = int8\ntrt_batch = 3\ntrt_backend = onnxruntime\n")
    r = pytester.runpytest(*fast_args(shared_cache), "--co", "-q")
    r.stdout.fnmatch_lines(["*tinycnn-onnxruntime-int8-dynamic-b3-opt3*", "1 test collected*"])
    r = pytester.runpytest(*fast_args(shared_cache), "--co", "-q", "--trt-precision=fp16")
    r.stdout.fnmatch_lines(["*tinycnn-onnxruntime-fp16-dynamic-b3-opt3*", "1 test collected*"])
    pytester.makeini("[pytest]\ntrt_precision = fp64\n")
    r = pytester.runpytest(*fast_args(shared_cache), "--co")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*ini trt_precision*fp64*valid values*"])


def test_cpu_defaults_are_a_small_matrix(
    pytester: pytest.Pytester, bench_file: Path, shared_cache: Path
) -> None:
    r = pytester.runpytest(f"--trt-cache-dir={shared_cache}", "--trt-device=cpu", "--co", "-q")
    # onnxruntime x (fp32, fp16, int8) x batches (1, 8), dynamic profile only; tensorrt cases listed (skipped).
    out = r.stdout.str()
    assert "tinycnn-onnxruntime-fp16-dynamic-b8-opt3" in out and "static" not in out
    assert "b32" not in out


def test_markers_registered(pytester: pytest.Pytester, shared_cache: Path) -> None:
    r = pytester.runpytest(f"--trt-cache-dir={shared_cache}", "--markers")
    for m in (
        "@pytest.mark.gpu:",
        "@pytest.mark.tensorrt:",
        "@pytest.mark.smoke:",
        "@pytest.mark.slow:",
        "@pytest.mark.trt_matrix(",
        "@pytest.mark.trt_quality(",
    ):
        assert m in r.stdout.str()


def test_gpu_marker_skips_with_reason(pytester: pytest.Pytester, shared_cache: Path) -> None:
    pytester.makepyfile(
        "import pytest\n@pytest.mark.gpu\ndef test_g(): pass\n@pytest.mark.tensorrt\ndef test_t(): pass\n"
    )
    r = pytester.runpytest(f"--trt-cache-dir={shared_cache}", "--trt-device=cpu", "-rs", "--strict-markers")
    r.assert_outcomes(skipped=2)
    r.stdout.fnmatch_lines(["*needs a CUDA GPU*", "*needs TensorRT: `import tensorrt` failed*"])
