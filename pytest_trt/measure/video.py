"""The real-time segmentation loop: a video source, per-stage timing of every frame, and its frame rate.

A frame goes through decode (OpenCV), preprocess (resize, normalise, NCHW), host-to-device, inference,
device-to-host and postprocess (argmax, colour palette, blend over the frame).  Each stage is timed on
the host clock around work that has finished (the GPU is synchronised at stage ends), because what a
camera application lives by is the wall time of the whole loop, not the engine's alone.

Pre- and post-processing run on the CPU (OpenCV + numpy) or, on a GPU, with torch ops on the device
(:class:`GpuOps`): the raw uint8 frame is copied up and resized/normalised there (the upload is part of
preprocess, 1 byte per pixel and channel instead of 4), and argmax, palette and blend run on the device
too, so D2H moves the finished uint8 overlay instead of float logits.  Measured on an H100, the CPU
postprocess (numpy argmax over 21 classes, resize, blend) was the largest stage at 512-640 px.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pytest_trt.engines.protocol import Engine, Feed

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


def preprocess_gpu(frame: Any, hw: int, device: Any, out: Any) -> None:
    """The same with torch ops: a uint8 HxWx3 BGR frame (numpy or tensor) resized bilinearly and
    normalised into ``out`` (1x3xhwxhw) on ``device``."""
    import torch
    import torch.nn.functional as F

    raw = frame if isinstance(frame, torch.Tensor) else torch.from_numpy(frame)
    raw = raw.to(device, non_blocking=False)  # 1 byte per value crosses the bus
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


def overlay_torch(frame: Any, logits: Any, colours: Any, alpha: float = 0.5) -> Any:
    """:func:`overlay` with torch ops (on the logits' device): HxWx3 uint8 frame, 1xCxhxw logits."""
    import torch
    import torch.nn.functional as F

    labels = logits[0].argmax(0)[None, None].to(torch.float32)  # 1x1xhxw class ids, exact in float32
    labels = F.interpolate(labels, size=tuple(frame.shape[:2]), mode="nearest")[0, 0].long()
    mask = colours[labels]  # HxWx3 uint8
    blend = frame.to(torch.float32) * (1.0 - alpha) + mask.to(torch.float32) * alpha
    return blend.round_().clamp_(0, 255).to(torch.uint8)


class GpuOps:
    """Pre- and post-processing on the engine's CUDA device and stream (the ``gpu`` pipeline variant)."""

    def __init__(self, engine: Engine, feed: Feed, hw: int, colours: np.ndarray) -> None:
        import torch

        dev_in = engine.device_input(feed)
        if dev_in is None:
            raise ValueError(f"{engine.info.backend}: its input is not a device tensor")
        self.engine, self.hw, self.dev_in = engine, hw, dev_in
        self.colours = torch.from_numpy(colours).to(dev_in.device)
        self.frame: Any = None
        self._host: Any = None

    def preprocess(self, frame: np.ndarray) -> None:
        import torch

        with torch.cuda.stream(self.engine.stream):  # the engine's stream: no cross-stream wait
            self.frame = torch.from_numpy(frame).to(self.dev_in.device, non_blocking=False)
            preprocess_gpu(self.frame, self.hw, self.dev_in.device, self.dev_in)

    def postprocess(self, out: Any) -> Any:
        import torch

        logits = self.engine.device_outputs(out)[0]
        with torch.cuda.stream(self.engine.stream):
            return overlay_torch(self.frame, logits, self.colours)

    def d2h(self, image: Any) -> np.ndarray:
        import torch

        if self._host is None or self._host.shape != image.shape:
            self._host = torch.empty(image.shape, dtype=image.dtype, pin_memory=True)
        with torch.cuda.stream(self.engine.stream):
            self._host.copy_(image, non_blocking=True)
        return np.asarray(self._host.numpy())


def palette(classes: int) -> np.ndarray:
    """A fixed, distinct BGR colour per class (class 0, background, black)."""
    rng = np.random.default_rng(7)
    p = rng.integers(64, 256, size=(classes, 3), dtype=np.uint8)
    p[0] = 0
    return p


def overlay(frame: np.ndarray, logits: np.ndarray, colours: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """argmax over classes, colourise, resize to the frame and blend: what the demo shows."""
    cv2 = _cv2()
    # numpy's argmax has no fast float16 path (2/3 slower measured on fp16 logits): widen first
    labels = np.argmax(logits[0].astype(np.float32, copy=False), axis=0).astype(np.uint8)
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
    gpu: GpuOps | None = None,
    warmup: int = 5,
) -> FrameStats:
    """Time ``frames`` frames through the six stages (after ``warmup`` untimed ones).

    With ``gpu`` the raw frame is uploaded and preprocessed into the feed's device input, and the overlay
    is made on the device and copied back (D2H moves the image); otherwise the CPU result goes through
    ``engine.load`` / ``h2d`` and the logits come back for the CPU overlay.
    """
    stats = FrameStats()
    for i, (frame, decode_s) in enumerate(frames_of(cap, frames + warmup)):
        t: dict[str, float] = {"decode": decode_s}
        t0 = time.perf_counter()
        if gpu is not None:
            gpu.preprocess(frame)
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
        if gpu is not None:
            image = gpu.postprocess(out)
            engine.sync()
            t4 = time.perf_counter()
            gpu.d2h(image)
            engine.sync()
            t5 = time.perf_counter()
            t.update(postprocess=t4 - t3, d2h=t5 - t4)
        else:
            host = engine.d2h(out)
            engine.sync()
            t4 = time.perf_counter()
            overlay(frame, host[0], colours)
            t5 = time.perf_counter()
            t.update(d2h=t4 - t3, postprocess=t5 - t4)
        t.update(preprocess=t1 - t0, h2d=t2 - t1, infer=t3 - t2)
        if i >= warmup:
            stats.add(t)
    return stats
