"""The background CUDA warm-up: it never raises into the session and leaves no memory behind."""

from __future__ import annotations

import pytest
import torch

from pytest_trt.hardware.cuda_warmup import Warmup


def test_a_failing_warmup_is_recorded_not_raised() -> None:
    w = Warmup("cpu")  # torch.cuda.device refuses a CPU device: the thread must swallow it
    w.wait()
    assert w.done and w.error is not None and "cpu" in w.error


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible)")
def test_warmup_loads_the_libraries_and_frees_what_it_allocated() -> None:
    before = torch.cuda.memory_allocated(0)
    w = Warmup("cuda:0")
    w.wait()
    assert w.done and w.error is None, w.error
    assert torch.cuda.is_initialized()
    assert torch.cuda.memory_allocated(0) == before  # no cuBLAS workspace left in the cases' figures
