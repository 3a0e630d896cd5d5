"""Start CUDA, cuBLAS and cuDNN on the session's GPU in the background while the session sets up.

The first GPU case of a process otherwise waits for the CUDA context and for cuBLAS/cuDNN to load
(seconds on a fresh process).  Every process of ``pytest-trt run --gpus`` pays that at the same time,
so it is a fixed cost that caps the speed-up of a spread matrix; started at configure time it
overlaps with collection and with the first model's construction on the host.  Nothing measured
depends on it: timing starts only after a case's own warm-up.
"""

from __future__ import annotations

import threading

import torch


class Warmup:
    """A daemon thread that touches the device's libraries once; :meth:`wait` before the first case."""

    def __init__(self, device: str) -> None:
        self.device = torch.device(device)
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="pytest-trt-cuda-warmup", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with torch.cuda.device(self.device):
                x = torch.ones(64, 64, device=self.device)
                y = x @ x  # cuBLAS(Lt) handle and library
                h = (x.half() @ x.half()).float()  # half-precision GEMM kernels
                img = torch.ones(1, 3, 16, 16, device=self.device)
                c = torch.nn.functional.conv2d(img, torch.ones(8, 3, 3, 3, device=self.device))  # cuDNN
                torch.cuda.synchronize(self.device)
                del x, y, h, img, c
            # This thread's cuBLAS workspace would otherwise stay allocated and show in the cases'
            # memory figures (the handle itself returns to torch's pool for the main thread).
            clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
            if clear is not None:
                clear()
            torch.cuda.empty_cache()
        except Exception as exc:  # the first case meets the same problem and reports it properly
            self.error = f"{type(exc).__name__}: {exc}"

    def wait(self, timeout: float = 120.0) -> None:
        self._thread.join(timeout)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()
