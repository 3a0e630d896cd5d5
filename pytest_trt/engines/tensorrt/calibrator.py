"""Implicit int8 calibration (TensorRT 8.6 and 10.x): calibration batches fed as CUDA tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pytest_trt.cache import atomic_write_bytes
from pytest_trt.engines.protocol import Unsupported
from pytest_trt.engines.tensorrt import versions
from pytest_trt.models.datasets import Samples


def entropy_calibrator(samples: Samples, batch: int, cache_path: Path, input_names: list[str]) -> Any:
    """Implicit-int8 calibrator (8.6 / 10.x only) feeding CUDA tensors, with a calibration cache."""
    trt = versions.trt
    import torch

    base: Any = getattr(trt, "IInt8EntropyCalibrator2", None)
    if base is None:  # removed with weak typing in 11.x
        raise Unsupported(
            f"TensorRT {trt.__version__} has no implicit int8 calibrators; use --trt-typing strong"
        )

    class Calib(base):  # type: ignore[misc,valid-type,unused-ignore]
        def __init__(self) -> None:
            base.__init__(self)
            self.batches = [samples.take(i, i + batch) for i in range(0, len(samples) - batch + 1, batch)]
            self.i = 0
            self.keep: Any = None

        def get_batch_size(self) -> int:
            return batch

        # The stubs say list[int]; TensorRT documents None (or []) as "no more data".
        def get_batch(self, names: list[str]) -> list[int] | None:  # base is Any: no override check
            if self.i >= len(self.batches):
                return None
            by_name = dict(zip(input_names, self.batches[self.i], strict=True))
            self.keep = [torch.from_numpy(np.ascontiguousarray(by_name[n])).cuda() for n in names]
            self.i += 1
            return [int(t.data_ptr()) for t in self.keep]

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.exists() else None

        def write_calibration_cache(self, cache: Any) -> None:
            atomic_write_bytes(cache_path, bytes(cache))

    return Calib()
