"""Running a compiled OpenVINO model: one LATENCY-hint request fed zero-copy from host arrays, and the
THROUGHPUT-hint compilation kept busy by an async queue for the engine's own throughput figure."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pytest_trt.engines.protocol import Device, Engine, EngineInfo, Feed, Inputs, typed_inputs


class OpenVinoFeed(Feed):
    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.arrays = arrays
        self.batch = int(arrays[0].shape[0]) if arrays[0].ndim else 1  # a relayout wrapper corrects it


class OpenVinoEngine(Engine):
    def __init__(
        self, core: Any, model: Any, compiled: Any, target: str, device: Device, info: EngineInfo
    ) -> None:
        self.core, self.model, self.compiled, self.target = core, model, compiled, target
        self.device = device
        self.info = info
        self.request = compiled.create_infer_request()
        self._types = [np.dtype(i.get_element_type().to_dtype()) for i in compiled.inputs]
        self._bound: OpenVinoFeed | None = None

    def make_feed(self, x: Inputs) -> OpenVinoFeed:
        return OpenVinoFeed(typed_inputs(x, self._types, [i.any_name for i in self.compiled.inputs]))

    def load(self, feed: Feed, x: np.ndarray) -> None:
        assert isinstance(feed, OpenVinoFeed)
        np.copyto(feed.arrays[0], x.reshape(feed.arrays[0].shape), casting="same_kind")

    def h2d(self, feed: Feed) -> None:
        """Inputs stay in host memory and are shared with the request, not copied (``io = host``)."""

    def _bind(self, feed: OpenVinoFeed) -> None:
        import openvino as ov

        for i, a in enumerate(feed.arrays):  # zero-copy: the request reads the feed's own arrays
            self.request.set_input_tensor(i, ov.Tensor(a, shared_memory=True))
        self._bound = feed

    def infer(self, feed: Feed) -> Any:
        assert isinstance(feed, OpenVinoFeed)
        if self._bound is not feed:
            self._bind(feed)
        self.request.infer()
        return [self.request.get_output_tensor(i).data for i in range(len(self.compiled.outputs))]

    def d2h(self, out: Any) -> list[np.ndarray]:
        return [np.asarray(o) for o in out]  # views of the request's buffers: valid until its next run

    def sync(self) -> None:
        """``infer`` is synchronous."""

    def async_throughput(self, feed: Feed, seconds: float) -> dict[str, Any]:
        """Samples/s of a THROUGHPUT-hint compilation kept busy by its optimal number of async requests."""
        import openvino as ov

        assert isinstance(feed, OpenVinoFeed)
        config = dict(self.info.extra["config"], PERFORMANCE_HINT="THROUGHPUT")
        t0 = time.perf_counter()
        compiled = self.core.compile_model(self.model, self.target, config)
        compile_s = time.perf_counter() - t0
        jobs = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        queue = ov.AsyncInferQueue(compiled, jobs)
        inputs = dict(enumerate(feed.arrays))
        for _ in range(jobs):  # warm every request once
            queue.start_async(inputs)
        queue.wait_all()
        done = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(jobs):
                queue.start_async(inputs)  # blocks while every request is busy
                done += 1
        queue.wait_all()
        wall = time.perf_counter() - t0
        return {
            "samples_per_s": done * feed.batch / wall,
            "requests": jobs,
            "streams": int(compiled.get_property("NUM_STREAMS")),
            "inferences": done,
            "seconds": round(wall, 3),
            "compile_seconds": round(compile_s, 4),
        }

    def close(self) -> None:
        self._bound = None
