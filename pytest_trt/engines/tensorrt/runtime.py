"""Running a plan: deserialization, facts from the engine inspector, and :class:`TrtEngine`, which runs
one execution context with the name-based I/O API (``set_input_shape`` / ``set_tensor_address`` /
``execute_async_v3``) on a non-default stream, with torch CUDA tensors as buffers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_trt.cache import atomic_write_text
from pytest_trt.engines.protocol import BuildFailed, Device, EngineInfo, Feed
from pytest_trt.engines.tensorrt import versions
from pytest_trt.engines.tensorrt.log import make_logger
from pytest_trt.engines.torch_io import TorchFeed, TorchIOEngine


class TrtEngine(TorchIOEngine):
    """A deserialized plan and one execution context, run with the name-based I/O API."""

    def __init__(
        self, engine: Any, device: Device, info: EngineInfo, logger: Any, input_order: Sequence[str] = ()
    ) -> None:
        trt = versions.trt
        super().__init__(device)
        import torch

        self.logger = logger  # must outlive the engine
        self.engine = engine
        self.info = info
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        # Feeds are positional in the ONNX graph's input order; the engine's own order is not promised.
        self.inputs = [n for n in input_order if n in inputs] + [n for n in inputs if n not in input_order]
        self.outputs_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.t2t = {
            trt.float32: torch.float32,
            trt.float16: torch.float16,
            trt.int8: torch.int8,
            trt.int32: torch.int32,
            trt.bool: torch.bool,
            trt.uint8: torch.uint8,
        }
        for a in ("bfloat16", "int64"):  # 10.0+
            if hasattr(trt, a):
                self.t2t[getattr(trt, a)] = getattr(torch, a)
        self.input_dtype = self.t2t[engine.get_tensor_dtype(self.inputs[0])]
        self._bound: tuple[tuple[int, tuple[int, ...]], ...] | None = None
        self._out: dict[str, Any] = {}
        self._graph: Any = None
        self._graph_feed: TorchFeed | None = None

    def feed_dtype(self, index: int, host: Any) -> Any:
        """Each input is fed as the engine declares it (8.6 turns int64 inputs into int32)."""
        return self.t2t[self.engine.get_tensor_dtype(self.inputs[index])]

    def _bind(self, feed: TorchFeed) -> None:
        import torch

        key = tuple((d.data_ptr(), tuple(d.shape)) for d in feed.devs)
        if self._bound == key:
            return
        if len(feed.devs) != len(self.inputs):
            raise RuntimeError(
                f"the engine takes {len(self.inputs)} inputs ({self.inputs}); {len(feed.devs)} fed"
            )
        for name, dev in zip(self.inputs, feed.devs, strict=True):
            if not self.context.set_input_shape(name, tuple(dev.shape)):
                raise RuntimeError(
                    f"input shape {tuple(dev.shape)} is outside the engine's profile for {name!r}"
                )
            if not self.context.set_tensor_address(name, dev.data_ptr()):
                raise RuntimeError(f"set_tensor_address failed for input {name!r}")
        missing = self.context.infer_shapes()
        if missing:
            raise RuntimeError(f"TensorRT inputs not specified: {missing}")
        self._out = {}
        for n in self.outputs_names:
            t = torch.empty(
                tuple(self.context.get_tensor_shape(n)),
                dtype=self.t2t[self.engine.get_tensor_dtype(n)],
                device=self.device.torch,
            )
            self.context.set_tensor_address(n, t.data_ptr())
            self._out[n] = t
        self._bound = key

    def infer(self, feed: Feed) -> Any:
        assert isinstance(feed, TorchFeed) and self._stream is not None
        if self._graph is not None and feed is self._graph_feed:
            with self.on_stream():
                self._graph.replay()
            return self._out
        self._bind(feed)
        if not self.context.execute_async_v3(self._stream.cuda_stream):
            raise RuntimeError("execute_async_v3 failed: " + "; ".join(self.logger.errors()[-3:]))
        return self._out

    def capture_graph(self, feed: Feed) -> bool:
        import torch

        assert isinstance(feed, TorchFeed) and self._stream is not None
        self.infer(feed)  # one untimed enqueue first, so initialisation is not captured
        self.sync()
        g = torch.cuda.CUDAGraph()
        ok = False
        try:
            with torch.cuda.graph(g, stream=self._stream):
                ok = bool(self.context.execute_async_v3(self._stream.cuda_stream))
        except RuntimeError as exc:
            self.info.warnings.append(f"CUDA graph capture refused: {exc}")
            ok = False
        if not ok:
            self.info.warnings.append("CUDA graph capture not possible for this engine; running without")
            return False
        self._graph, self._graph_feed = g, feed
        self.info.cuda_graph = True
        return True

    def close(self) -> None:
        self._graph = None
        self.context = None
        self.engine = None


def engine_facts(engine: Any, layers_json_path: Path | None) -> dict[str, Any]:
    """Layer count, device memory and (DETAILED builds) the inspector's layer list and weight count."""
    trt = versions.trt
    facts: dict[str, Any] = {"layers": engine.num_layers}
    if hasattr(engine, "device_memory_size_v2"):
        facts["device_memory_bytes"] = int(engine.device_memory_size_v2)
    elif hasattr(engine, "device_memory_size"):
        facts["device_memory_bytes"] = int(engine.device_memory_size)
    facts["num_optimization_profiles"] = getattr(engine, "num_optimization_profiles", None)
    try:
        insp = engine.create_engine_inspector()
        info = json.loads(insp.get_engine_information(trt.LayerInformationFormat.JSON))
    except Exception as exc:  # inspector output is diagnostic; its absence must not fail a run
        facts["inspector_error"] = str(exc)
        return facts
    layers = info.get("Layers", [])
    weights = 0
    for layer in layers:
        if isinstance(layer, dict):
            for k in ("Weights", "Bias"):
                v = layer.get(k)
                if isinstance(v, dict):
                    weights += int(v.get("Count", 0) or 0)
    facts["inspector_layers"] = len(layers)
    facts["engine_params"] = weights or None
    if layers_json_path is not None:
        atomic_write_text(layers_json_path, json.dumps(info, indent=1))
        facts["layers_json"] = str(layers_json_path)
    return facts


def load_engine(
    plan_path: Path, device: Device, info: EngineInfo, allow_host_code: bool, input_order: Sequence[str]
) -> TrtEngine:
    """Deserialize the plan at ``plan_path`` on ``device`` and fill ``info`` with the inspector's facts."""
    trt = versions.trt
    logger = make_logger("WARNING")
    runtime = trt.Runtime(logger)
    runtime.engine_host_code_allowed = bool(allow_host_code)
    engine = runtime.deserialize_cuda_engine(plan_path.read_bytes())
    if engine is None:
        raise BuildFailed(f"TensorRT could not deserialize {plan_path}: " + "; ".join(logger.errors()[-3:]))
    facts = engine_facts(engine, plan_path.with_name(plan_path.name + ".layers.json"))
    info.layers = facts.pop("layers", info.layers)
    info.device_memory_bytes = facts.pop("device_memory_bytes", None)
    info.engine_params = facts.pop("engine_params", None)
    info.extra.update(facts)
    return TrtEngine(engine, device, info, logger, input_order)
