"""Engines of graphs that do not hold the batch on axis 0 of every tensor, run batch first.

Samples, references and metrics hold every tensor batch first.  A graph may put the batch elsewhere
(a recurrent state ``[layers, N, hidden]`` in and out) or take an input once per batch (a scalar
sample rate).  :class:`BatchFirst` wraps any engine of such a graph: it lays each input out as the
graph takes it when the feed is made (untimed) and moves each output's batch axis to the front when
it is copied back (a view, no copy), so the timed loop runs the inner engine unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_trt.engines.protocol import Engine, Feed, Inputs, as_arrays
from pytest_trt.models.registry import ModelSpec


class BatchFirst(Engine):
    def __init__(self, inner: Engine, spec: ModelSpec) -> None:
        self.inner = inner
        self.spec = spec
        self.info = inner.info
        self.device = inner.device

    def make_feed(self, x: Inputs) -> Feed:
        feed = self.inner.make_feed(self.spec.to_graph(as_arrays(x)))
        feed.batch = len(as_arrays(x)[0])  # samples per inference, whatever axis carries them
        return feed

    def h2d(self, feed: Feed) -> None:
        self.inner.h2d(feed)

    def infer(self, feed: Feed) -> Any:
        return self.inner.infer(feed)

    def d2h(self, out: Any) -> list[np.ndarray]:
        return self.spec.from_graph(self.inner.d2h(out))

    def sync(self) -> None:
        self.inner.sync()

    @property
    def stream(self) -> Any:
        return self.inner.stream

    def load(self, feed: Feed, x: np.ndarray) -> None:
        self.inner.load(feed, self.spec.input.to_graph(x))

    def device_input(self, feed: Feed) -> Any:
        return self.inner.device_input(feed)

    def device_outputs(self, out: Any) -> list[Any]:
        return self.spec.from_graph(self.inner.device_outputs(out))

    def capture_graph(self, feed: Feed) -> bool:
        return self.inner.capture_graph(feed)

    def async_throughput(self, feed: Feed, seconds: float) -> dict[str, Any] | None:
        return self.inner.async_throughput(feed, seconds)

    def close(self) -> None:
        self.inner.close()


def batch_first(engine: Engine, spec: ModelSpec) -> Engine:
    """``engine`` itself for a batch-first graph, else wrapped so it takes and gives batches first."""
    return engine if spec.batch_first else BatchFirst(engine, spec)
