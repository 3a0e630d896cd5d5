"""The real-time segmentation loop: a video source, per-stage timing of every frame, and its frame rate.

A frame goes through decode (OpenCV), preprocess (resize, normalise, NCHW), host-to-device, inference,
device-to-host and postprocess (argmax, colour palette, blend over the frame).  Each stage is timed on
the host clock around work that has finished (the GPU is synchronised at stage ends), because what a
camera application lives by is the wall time of the whole loop, not the engine's alone.

Preprocessing runs on the CPU (OpenCV + numpy) or, on a GPU, with torch ops on the device: the raw
uint8 frame is copied up and resized/normalised there, so the H2D stage moves 1 byte per pixel and
channel instead of 4.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pytest_trt.backends.base import Engine, Feed

STAGES = ("decode", "preprocess", "h2d", "infer", "d2h", "postprocess")
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # torchvision's ImageNet normalisation
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class SourceUnavailable(RuntimeError):
    """The video file or camera cannot be opened; the message says which and why."""


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise SourceUnavailable(
            f"OpenCV is not installed ({exc}): pip install opencv-python-headless"
        ) from None
    return cv2


def make_clip(path: Path, frames: int = 90, size: tuple[int, int] = (640, 480), fps: int = 30) -> Path:
    """A short real-image clip: scikit-image's photographs, panned and zoomed, written with OpenCV."""
    cv2 = _cv2()
    from skimage import data

    w, h = size
    images = [data.chelsea(), data.coffee(), data.astronaut()]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise SourceUnavailable(f"{path}: OpenCV cannot write an mp4v video here")
    try:
        for i in range(frames):
            img = images[(i * len(images)) // frames]
            t = (i % (frames // len(images) or 1)) / max(frames // len(images) - 1, 1)
            zoom = 1.0 + 0.5 * t  # zoom in while panning left to right
            ih, iw = img.shape[:2]
            cw, ch = int(iw / zoom), int(ih / zoom)
            x0 = int((iw - cw) * t)
            y0 = (ih - ch) // 2
            crop = img[y0 : y0 + ch, x0 : x0 + cw]
            writer.write(
                cv2.cvtColor(cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
            )
    finally:
        writer.release()
    return path


def open_source(spec: str | Path) -> Any:
    """``cv2.VideoCapture`` for a file path or a camera index ("0"); SourceUnavailable when it cannot open."""
    cv2 = _cv2()
    text = str(spec)
    if text.isdigit():
        cap = cv2.VideoCapture(int(text))
        if not cap.isOpened():
            raise SourceUnavailable(f"--trt-video {text}: no camera {text} can be opened on this machine")
        return cap
    if not Path(text).is_file():
        raise SourceUnavailable(f"--trt-video {text}: no such file")
    cap = cv2.VideoCapture(text)
    if not cap.isOpened():
        raise SourceUnavailable(f"--trt-video {text}: OpenCV cannot decode this file")
    return cap


def frames_of(cap: Any, limit: int, loop: bool = True) -> Iterator[tuple[np.ndarray, float]]:
    """(BGR frame, decode seconds) up to ``limit`` frames; a file is rewound when it ends."""
    cv2 = _cv2()
    n = 0
    while n < limit:
        t0 = time.perf_counter()
        ok, frame = cap.read()
        dt = time.perf_counter() - t0
        if not ok:
            if not loop or n == 0 or not cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                return
            continue
        n += 1
        yield frame, dt


def preprocess_cpu(frame: np.ndarray, hw: int) -> np.ndarray:
    """BGR uint8 HxWx3 -> normalised RGB float32 1x3xhw x hw."""
    cv2 = _cv2()
    rgb = cv2.cvtColor(cv2.resize(frame, (hw, hw), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    x = (rgb.astype(np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def preprocess_gpu(frame: np.ndarray, hw: int, device: Any, out: Any) -> None:
    """The same on the GPU with torch: upload uint8, resize bilinearly, normalise into ``out`` (1x3xhwxhw)."""
    import torch
    import torch.nn.functional as F

    raw = torch.from_numpy(frame).to(device, non_blocking=False)  # HxWx3 uint8 BGR: 1 byte per value
    x = raw.flip(-1).permute(2, 0, 1)[None].float().div_(255.0)
    x = F.interpolate(x, size=(hw, hw), mode="bilinear", align_corners=False)
    mean, std = _norm(str(device))
    out.copy_((x - mean) / std)


@functools.lru_cache(maxsize=8)
def _norm(device: str) -> tuple[Any, Any]:
    import torch

    return (
        torch.tensor(MEAN, device=device).view(1, 3, 1, 1),
        torch.tensor(STD, device=device).view(1, 3, 1, 1),
    )


def palette(classes: int) -> np.ndarray:
    """A fixed, distinct BGR colour per class (class 0, background, black)."""
    rng = np.random.default_rng(7)
    p = rng.integers(64, 256, size=(classes, 3), dtype=np.uint8)
    p[0] = 0
    return p


def overlay(frame: np.ndarray, logits: np.ndarray, colours: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """argmax over classes, colourise, resize to the frame and blend: what the demo shows."""
    cv2 = _cv2()
    labels = np.argmax(logits[0], axis=0).astype(np.uint8)
    mask = colours[labels]
    mask = cv2.resize(mask, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST)
    out: np.ndarray = cv2.addWeighted(frame, 1.0 - alpha, mask, alpha, 0.0)
    return out


@dataclass
class FrameStats:
    """Per-frame stage times (seconds) and what they mean against a frame budget."""

    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})

    def add(self, times: dict[str, float]) -> None:
        for s in STAGES:
            self.stages[s].append(times.get(s, 0.0))

    @property
    def frame_s(self) -> np.ndarray:
        return np.sum([np.asarray(self.stages[s]) for s in STAGES], axis=0)

    def summary(self, target_fps: float) -> dict[str, Any]:
        f = self.frame_s
        n = len(f)
        if n == 0:
            return {"frames": 0}
        worst = np.sort(f)[-max(1, math.ceil(n / 100)) :]  # the slowest 1 % of frames
        budget = 1.0 / target_fps
        mean_ms = {s: float(np.mean(self.stages[s])) * 1e3 for s in STAGES}
        fps = 1.0 / float(np.mean(f))
        low = 1.0 / float(np.mean(worst))
        return {
            "frames": n,
            "fps_mean": fps,
            "fps_1pct_low": low,
            "frame_ms": {
                "mean": float(np.mean(f)) * 1e3,
                "p50": float(np.median(f)) * 1e3,
                "max": float(f.max()) * 1e3,
            },
            "stage_ms": mean_ms,
            "budget_ms": budget * 1e3,
            "budget_share": {s: mean_ms[s] / (budget * 1e3) for s in STAGES},
            "target_fps": target_fps,
            "meets_target": fps >= target_fps,
            "meets_target_1pct_low": low >= target_fps,
        }


def run_loop(
    cap: Any,
    frames: int,
    hw: int,
    engine: Engine,
    feed: Feed,
    colours: np.ndarray,
    gpu_preprocess: Callable[[np.ndarray], None] | None = None,
    warmup: int = 5,
) -> FrameStats:
    """Time ``frames`` frames through the six stages (after ``warmup`` untimed ones).

    With ``gpu_preprocess`` the raw frame is written into the feed's device input by that function
    (its upload is part of the stage); otherwise the CPU result goes through ``engine.load`` and ``h2d``.
    """
    stats = FrameStats()
    for i, (frame, decode_s) in enumerate(frames_of(cap, frames + warmup)):
        t: dict[str, float] = {"decode": decode_s}
        t0 = time.perf_counter()
        if gpu_preprocess is not None:
            gpu_preprocess(frame)
            engine.sync()
            t1 = t2 = time.perf_counter()
        else:
            engine.load(feed, preprocess_cpu(frame, hw))
            t1 = time.perf_counter()
            engine.h2d(feed)
            engine.sync()
            t2 = time.perf_counter()
        out = engine.infer(feed)
        engine.sync()
        t3 = time.perf_counter()
        host = engine.d2h(out)
        engine.sync()
        t4 = time.perf_counter()
        overlay(frame, host[0], colours)
        t5 = time.perf_counter()
        t.update(preprocess=t1 - t0, h2d=t2 - t1, infer=t3 - t2, d2h=t4 - t3, postprocess=t5 - t4)
        if i >= warmup:
            stats.add(t)
    return stats
