"""Shared fixtures of the plugin's own tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# pytester's in-process runs restore sys.modules afterwards; native extensions imported for the first
# time inside such a run (torch._dynamo -> triton, the ONNX exporter) abort when imported again.
# Importing them here, once, keeps them out of that snapshot.
import onnxconverter_common  # noqa: F401
import onnxruntime.quantization  # noqa: F401
import pytest
import torch._dynamo
import torch.onnx  # noqa: F401
import torchvision  # noqa: F401

BENCH = """
import pytest

@pytest.mark.trt_matrix(models=["tinycnn"], backends=["onnxruntime", "torch", "tensorrt"])
def test_tiny(trt_run):
    trt_run.run()
"""


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifact cache for every pytester run of the session (exports are built once)."""
    return tmp_path_factory.mktemp("trt-cache")


@pytest.fixture
def bench_file(pytester: pytest.Pytester) -> Path:
    return pytester.makepyfile(test_bench=BENCH)


def fast_args(cache: Path, *extra: str) -> list[str]:
    """Options that keep a pytester benchmark run to a few seconds on CPU."""
    return [
        "-p",
        "no:cacheprovider",
        f"--trt-cache-dir={cache}",
        "--trt-device=cpu",
        "--trt-rounds=5",
        "--trt-min-time=0",
        "--trt-warmup=0",
        "--trt-warmup-iters=1",
        "--trt-e2e-rounds=2",
        "--trt-samples=4",
        "--trt-calib-samples=4",
        *extra,
    ]


def load_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data
