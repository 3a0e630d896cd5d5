"""Running a PyTorch module as an engine: on the device's stream, optionally replayed as a CUDA graph."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pytest_trt.engines.protocol import (
    Device,
    EngineInfo,
    Feed,
)
from pytest_trt.engines.torch_io import TorchFeed, TorchIOEngine


class TorchEngine(TorchIOEngine):
    def __init__(
        self, module: nn.Module, device: Device, dtype: torch.dtype, info: EngineInfo, graphs: bool = True
    ) -> None:
        super().__init__(device)
        self.graphs = graphs
        self.module = module
        self.input_dtype = dtype
        self.info = info
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_feed: TorchFeed | None = None
        self._graph_out: Any = None

    @torch.inference_mode()
    def infer(self, feed: Feed) -> Any:
        assert isinstance(feed, TorchFeed)
        if self._graph is not None and feed is self._graph_feed:
            with self.on_stream():
                self._graph.replay()
            return self._graph_out
        with self.on_stream():
            return self.module(*feed.devs)

    def capture_graph(self, feed: Feed) -> bool:
        assert isinstance(feed, TorchFeed)
        if not self.graphs or not self.device.is_cuda or self._stream is None:
            return False
        try:
            with torch.inference_mode():
                self.infer(feed)  # one untimed run first: lazy init must not be captured
                self.sync()
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g, stream=self._stream):
                    out = self.module(*feed.devs)
        except RuntimeError as exc:
            self.info.warnings.append(f"CUDA graph capture refused: {exc}")
            return False
        self._graph, self._graph_feed, self._graph_out = g, feed, out
        self.info.cuda_graph = True
        return True

    def close(self) -> None:
        self._graph = self._graph_out = self._graph_feed = None
