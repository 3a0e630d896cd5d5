"""Test-only backends that wrap onnxruntime (``faulty_*``) or OpenVINO (``faulty_ov_*``) and corrupt
their outputs in controlled ways.

Each corruption is a real failure mode of inference engines: a batch mix-up (a stale or shifted output
buffer), noise (a broken kernel or uninitialised memory), top-1 classes flipped for a few samples (a
wrong index in a fused argmax/softmax), a zeroed channel (one class plane of a segmentation head lost).
The gates must fail every one of them wherever it exceeds what the precision's own rounding explains,
and pass the uncorrupted backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pytest_trt.engines.onnxrt.backend import OnnxRuntimeBackend
from pytest_trt.engines.protocol import Backend, BuildContext, Engine

CORRUPTIONS = ("mixup", "noise", "flip", "zero_channel", "noise_last")
# a detector's faults (YOLOv8 head ``[B, 4 + nc + 32, A]``; prototypes ``[B, 32, h, w]`` last)
DETECTOR_CORRUPTIONS = ("shift_boxes", "drop_detections", "swap_masks_last")
SHIFT = 0.2  # boxes moved by a fifth of their size, right and down (IoU with the true box ~0.7)
DROP_SHARE = 0.5  # the first half of the anchors lose their scores
NOISE = 0.05  # Gaussian noise at 5 % of the output's RMS
FLIP_EVERY = 12  # one sample in twelve (about 8 %) gets a wrong top-1 class


class Corrupting:
    """Mixed into a backend's engine class: ``d2h`` returns the outputs damaged by ``corruption``."""

    corruption = ""
    output = 0  # which output is corrupted (-1: the last one of a multi-output model)

    def arm(self) -> None:
        self.rng = np.random.default_rng(7)
        self.seen = 0  # samples returned so far (selects which get a flipped class)
        self.stale: np.ndarray | None = None

    def d2h(self, out: Any) -> list[np.ndarray]:
        arrays = [np.array(o, copy=True) for o in super().d2h(out)]  # type: ignore[misc]
        arrays[self.output] = getattr(self, f"_{self.corruption}")(arrays[self.output])
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

    def _shift_boxes(self, y: np.ndarray) -> np.ndarray:
        """Every box moved right and down by SHIFT of its own width and height."""
        y = y.copy()
        y[:, 0:2] += SHIFT * y[:, 2:4]
        return y

    def _drop_detections(self, y: np.ndarray) -> np.ndarray:
        """The class scores of the first DROP_SHARE of the anchors zeroed (the finest stride's upper rows):
        the objects there are never reported.  Every third anchor was too mild: a neighbour predicts
        the same object, and a detector trained to be redundant kept 96 % of its mAP."""
        y = y.copy()
        y[:, 4 : 4 + self.classes, : int(y.shape[2] * DROP_SHARE)] = 0.0
        return y

    def _swap_masks(self, y: np.ndarray) -> np.ndarray:
        """Prototype masks in reverse order: each detection assembles its mask from the wrong ones."""
        return np.ascontiguousarray(y[:, ::-1])

    classes = 3  # the shapes detector's class count (score channels after the 4 box values)


def _corrupted(engine: Engine, corruption: str) -> Engine:
    """A copy of the built engine (same state) of a subclass whose outputs carry ``corruption``."""
    # "<kind>_last" corrupts the last output of a multi-output model instead of the first.
    attrs = {
        "corruption": corruption.removesuffix("_last"),
        "output": -1 if corruption.endswith("_last") else 0,
    }
    cls = type(f"{corruption}{type(engine).__name__}", (Corrupting, type(engine)), attrs)
    damaged: Any = object.__new__(cls)
    damaged.__dict__.update(engine.__dict__)
    damaged.arm()
    return damaged  # type: ignore[no-any-return]


def make_backend(
    corruption: str, base: type[Backend] = OnnxRuntimeBackend, prefix: str = "faulty"
) -> type[Backend]:
    class Corrupted(base):  # type: ignore[valid-type,misc]
        name = f"{prefix}_{corruption}"

        def build(self, ctx: BuildContext) -> Engine:
            return _corrupted(super().build(ctx), corruption)

    Corrupted.__name__ = Corrupted.__qualname__ = f"Faulty_{prefix}_{corruption}"
    return Corrupted


def register_all(register: Callable[[str, Any], None]) -> None:
    for c in (*CORRUPTIONS, *DETECTOR_CORRUPTIONS):
        register(f"faulty_{c}", make_backend(c))
    from pytest_trt.engines.openvino.backend import OpenVinoBackend  # imports openvino lazily

    for c in ("mixup", "noise"):
        register(f"faulty_ov_{c}", make_backend(c, OpenVinoBackend, "faulty_ov"))
