"""A test-only backend that wraps onnxruntime and corrupts its outputs in controlled ways.

Each corruption is a real failure mode of inference engines: a batch mix-up (a stale or shifted output
buffer), noise (a broken kernel or uninitialised memory), top-1 classes flipped for a few samples (a
wrong index in a fused argmax/softmax), a zeroed channel (one class plane of a segmentation head lost).
The gates must fail every one of them wherever it exceeds what the precision's own rounding explains,
and pass the uncorrupted backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_trt import backends
from pytest_trt.backends.base import BuildContext
from pytest_trt.backends.onnxruntime_backend import OnnxRuntimeBackend, OrtEngine

CORRUPTIONS = ("mixup", "noise", "flip", "zero_channel", "noise_last")
NOISE = 0.05  # Gaussian noise at 5 % of the output's RMS
FLIP_EVERY = 12  # one sample in twelve (about 8 %) gets a wrong top-1 class


class CorruptedEngine(OrtEngine):
    corruption = ""
    target = 0  # which output is corrupted (-1: the last one of a multi-output model)

    def __init__(self, inner: OrtEngine) -> None:
        super().__init__(inner.session, inner.device, inner.info)
        self.rng = np.random.default_rng(7)
        self.seen = 0  # samples returned so far (selects which get a flipped class)
        self.stale: np.ndarray | None = None

    def d2h(self, out: Any) -> list[np.ndarray]:
        arrays = [np.array(o, copy=True) for o in super().d2h(out)]
        arrays[self.target] = getattr(self, f"_{self.corruption}")(arrays[self.target])
        return arrays

    def _mixup(self, y: np.ndarray) -> np.ndarray:
        """Each sample gets the previous sample's output (within a batch, and across calls)."""
        prev = self.stale if self.stale is not None else y[-1:]
        self.stale = y[-1:].copy()
        return np.concatenate([prev, y[:-1]]) if len(y) > 1 else prev.copy()

    def _noise(self, y: np.ndarray) -> np.ndarray:
        rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
        return (y + self.rng.normal(0.0, NOISE * rms, y.shape)).astype(y.dtype)

    def _flip(self, y: np.ndarray) -> np.ndarray:
        """Swap the top-1 logit with the 5th-ranked one for every FLIP_EVERY-th sample."""
        if y.ndim != 2:
            return y  # classification logits only
        y = y.copy()
        flat = y.reshape(len(y), -1)
        for i in range(len(y)):
            if (self.seen + i) % FLIP_EVERY == FLIP_EVERY - 1:
                order = np.argsort(-flat[i])
                a, b = order[0], order[4]
                flat[i, a], flat[i, b] = flat[i, b], flat[i, a]
        self.seen += len(y)
        return y

    def _zero_channel(self, y: np.ndarray) -> np.ndarray:
        """Zero the dominant class plane of N x C x H x W segmentation logits."""
        if y.ndim != 4:
            return y  # segmentation logits only
        y = y.copy()
        c = int(np.argmax(np.abs(y).sum(axis=(0, 2, 3))))
        y[:, c] = 0
        return y


def make_backend(corruption: str) -> type[OnnxRuntimeBackend]:
    # "<kind>_last" corrupts the last output of a multi-output model instead of the first.
    attrs = {
        "corruption": corruption.removesuffix("_last"),
        "target": -1 if corruption.endswith("_last") else 0,
    }
    engine_cls = type(f"{corruption}Engine", (CorruptedEngine,), attrs)

    class Corrupted(OnnxRuntimeBackend):
        name = f"faulty_{corruption}"

        def build(self, ctx: BuildContext) -> OrtEngine:
            return engine_cls(super().build(ctx))

    Corrupted.__name__ = Corrupted.__qualname__ = f"Faulty_{corruption}"
    return Corrupted


def register_all() -> None:
    for c in CORRUPTIONS:
        backends.register(f"faulty_{c}", make_backend(c))
