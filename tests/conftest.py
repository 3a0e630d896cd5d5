"""Shared fixtures of the plugin's own tests."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# pytester points HOME at a fresh folder for every run, which moved the default artifact cache there too:
# each in-process run of the trained detector trained it again (100 s of the 130 s a run took on 2
# cores).  Trained weights are cached by content (recipe, data, torch), so the machine's cache serves
# every run; engines and graphs still go to each test's own --trt-cache-dir.
os.environ.setdefault("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))

# pytester's in-process runs restore sys.modules afterwards; native extensions imported for the first
# time inside such a run (torch._dynamo -> triton, the ONNX exporter) abort when imported again.
# Importing them here, once, keeps them out of that snapshot.
for _mod in (
    "onnxconverter_common",
    "onnxruntime.quantization",
    "torch._dynamo",
    "torch.onnx",
    "torchvision",
):
    with contextlib.suppress(ImportError):  # a missing optional package shows up where it is needed
        importlib.import_module(_mod)

from tests import fault_backend  # noqa: E402 - after the pre-imports above

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
        # A GPU machine may run the same tests on its device (PYTEST_TRT_TEST_DEVICE=cuda).
        f"--trt-device={os.environ.get('PYTEST_TRT_TEST_DEVICE', 'cpu')}",
        # In-process runs share this test process, whose CPU thread pools are already started: timing
        # workers forked from it would hang (they detect it and fall back, after a 10 s check). Isolation
        # itself is tested in fresh processes (tests/test_isolation.py, tests/test_outside_models.py).
        "--trt-isolate=off",
        "--trt-rounds=5",
        "--trt-min-time=0",
        "--trt-target-ci=0",
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


def pytest_trt_register_backends(register: Callable[[str, Any], None]) -> None:
    """The corrupting test backends, for this session and every in-process pytester run after it."""
    fault_backend.register_all(register)
