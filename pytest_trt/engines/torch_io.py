"""I/O plumbing shared by engines whose buffers are torch tensors (the torch and TensorRT backends).

On CUDA every copy and launch goes to the engine's own non-default stream; host buffers are pinned so
host<->device copies are truly asynchronous and comparable to trtexec's H2D/D2H figures.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from pytest_trt.engines.protocol import Device, Engine, Feed, Inputs, as_arrays


class TorchFeed(Feed):
    def __init__(self, hosts: list[torch.Tensor], devs: list[torch.Tensor]) -> None:
        self.hosts = hosts
        self.devs = devs
        self.batch = int(devs[0].shape[0]) if devs[0].ndim else 1  # a relayout wrapper corrects it


class TorchIOEngine(Engine):
    """Implements the feed / copy / sync part of :class:`Engine` with torch tensors."""

    input_dtype: torch.dtype = torch.float32

    def __init__(self, device: Device) -> None:
        self.device = device
        self._stream = torch.cuda.Stream(device=device.torch) if device.is_cuda else None
        self._host_out: dict[tuple[int, tuple[int, ...], torch.dtype], torch.Tensor] = {}

    @property
    def stream(self) -> torch.cuda.Stream | None:
        return self._stream

    @contextlib.contextmanager
    def on_stream(self) -> Iterator[None]:
        if self._stream is None:
            yield
        else:
            with torch.cuda.stream(self._stream):
                yield

    def feed_dtype(self, index: int, host: torch.Tensor) -> torch.dtype:
        """The dtype input ``index`` is fed as: real-valued inputs follow the precision, ids stay integers."""
        return self.input_dtype if host.is_floating_point() else host.dtype

    def make_feed(self, x: Inputs) -> TorchFeed:
        hosts, devs = [], []
        for i, a in enumerate(as_arrays(x)):
            host = torch.from_numpy(np.asarray(a, order="C"))  # a scalar stays 0-d
            host = host.to(self.feed_dtype(i, host))
            if self.device.is_cuda:
                host = host.pin_memory()
            with self.on_stream():
                devs.append(host.to(self.device.torch, non_blocking=True))
            hosts.append(host)
        self.sync()
        return TorchFeed(hosts, devs)

    def load(self, feed: Feed, x: np.ndarray) -> None:
        assert isinstance(feed, TorchFeed)
        feed.hosts[0].copy_(torch.from_numpy(np.ascontiguousarray(x)).view(feed.hosts[0].shape))
        if not self.device.is_cuda:
            feed.devs[0].copy_(feed.hosts[0])  # on the CPU the "device" buffer is a second host tensor

    def device_input(self, feed: Feed) -> Any:
        assert isinstance(feed, TorchFeed)
        return feed.devs[0] if self.device.is_cuda else None

    def h2d(self, feed: Feed) -> None:
        assert isinstance(feed, TorchFeed)
        if self.device.is_cuda:
            with self.on_stream():
                for dev, host in zip(feed.devs, feed.hosts, strict=True):
                    dev.copy_(host, non_blocking=True)

    def outputs(self, out: Any) -> list[torch.Tensor]:
        if isinstance(out, torch.Tensor):
            return [out]
        if isinstance(out, dict):
            return list(out.values())
        return list(out)

    def device_outputs(self, out: Any) -> list[Any]:
        return self.outputs(out)

    def d2h(self, out: Any) -> list[np.ndarray]:
        res = []
        for i, t in enumerate(self.outputs(out)):
            if not self.device.is_cuda:
                res.append(t.detach().float().numpy() if t.dtype != torch.float32 else t.detach().numpy())
                continue
            k = (i, tuple(t.shape), t.dtype)
            buf = self._host_out.get(k)
            if buf is None:
                buf = self._host_out[k] = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
            with self.on_stream():
                buf.copy_(t, non_blocking=True)
            # numpy has no bfloat16: the copy moves the real bytes, and the host sees their raw bits.
            res.append(buf.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else buf.numpy())
        return res

    def run(self, x: Inputs) -> list[np.ndarray]:
        """Quality path: outputs as float32 (bf16 and fp16 widened exactly) or their integer type."""
        feed = self.make_feed(x)
        outs = self.outputs(self.infer(feed))
        self.sync()
        return [
            t.detach().float().cpu().numpy() if t.is_floating_point() else t.detach().cpu().numpy()
            for t in outs
        ]

    def sync(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()
