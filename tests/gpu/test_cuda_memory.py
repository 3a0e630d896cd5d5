"""A timing worker gets the GPU the session no longer uses: the session's cached CUDA blocks (the
quality pass's temporaries) go back to the driver before a case is timed in another process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_trt.hardware.device import release_cuda_cache

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

pytestmark = pytest.mark.gpu
WORKER = "import sys, torch; torch.empty(int(sys.argv[1]), dtype=torch.uint8, device='cuda'); print('ok')"


def _another_process_allocates(nbytes: int) -> bool:
    run = subprocess.run([sys.executable, "-c", WORKER, str(nbytes)], capture_output=True, text=True)
    return run.returncode == 0 and "ok" in run.stdout


@pytest.fixture
def cached_most_of_the_gpu() -> int:
    """Allocate then free 90 % of the free memory: freed, but still held by this process's cache."""
    free, _ = torch.cuda.mem_get_info()
    big = torch.empty(int(free * 0.9), dtype=torch.uint8, device="cuda")
    del big
    assert torch.cuda.memory_reserved() >= free * 0.9
    return free


def test_a_process_started_while_the_session_caches_the_gpu_runs_out_of_memory(
    cached_most_of_the_gpu: int,
) -> None:
    try:
        assert not _another_process_allocates(int(cached_most_of_the_gpu * 0.3))
    finally:
        torch.cuda.empty_cache()


def test_after_the_release_the_other_process_gets_the_memory(cached_most_of_the_gpu: int) -> None:
    held = release_cuda_cache()
    assert held is not None and held["reserved_mb"] < cached_most_of_the_gpu * 0.1 / 2**20
    assert _another_process_allocates(int(cached_most_of_the_gpu * 0.3))
