"""Running an ONNX Runtime session: host feeds typed as the graph declares them, synchronous runs."""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_trt.engines.protocol import Device, Engine, EngineInfo, Feed, Inputs, typed_inputs

# ONNX Runtime's input type names -> the numpy dtype it takes for them (it converts nothing itself)
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


class OnnxRuntimeFeed(Feed):
    def __init__(self, inputs: list[tuple[str, Any]], x: Inputs) -> None:
        names = [n for n, _ in inputs]
        arrays = typed_inputs(x, [t for _, t in inputs], names)
        self.feed = dict(zip(names, arrays, strict=True))
        self.batch = int(arrays[0].shape[0]) if arrays[0].ndim else 1  # a relayout wrapper corrects it


class OnnxRuntimeEngine(Engine):
    """An InferenceSession run on host inputs (``io = host``: ONNX Runtime copies them itself)."""

    def __init__(self, session: Any, device: Device, info: EngineInfo) -> None:
        self.session = session
        self.device = device
        self.info = info
        self.inputs = [(i.name, _ORT_DTYPES.get(i.type)) for i in session.get_inputs()]

    def make_feed(self, x: Inputs) -> OnnxRuntimeFeed:
        return OnnxRuntimeFeed(self.inputs, x)

    def load(self, feed: Feed, x: np.ndarray) -> None:
        assert isinstance(feed, OnnxRuntimeFeed)
        dst = feed.feed[self.inputs[0][0]]
        np.copyto(dst, x.reshape(dst.shape), casting="same_kind")

    def h2d(self, feed: Feed) -> None:
        """Inputs stay in host memory: ORT copies them itself (``io = host``)."""

    def infer(self, feed: Feed) -> Any:
        assert isinstance(feed, OnnxRuntimeFeed)
        return self.session.run(None, feed.feed)

    def d2h(self, out: Any) -> list[np.ndarray]:
        return [np.asarray(o) for o in out]

    def sync(self) -> None:
        """``session.run`` is synchronous."""
