"""ONNX Runtime backend: the embedded default that runs everywhere (CPU EP; CUDA EP when installed).

Precision comes from the graph recipes (fp16-converted, int8 Q/DQ), the same ONNX files TensorRT's
strongly typed path consumes.  The optimization level maps onto ORT's graph optimization levels
(0: disabled, 1: basic, 2: extended, 3-5: all) and the optimized graph's node count is reported as
the engine's layer count.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pytest_trt.engines.protocol import (
    Availability,
    Backend,
    BuildContext,
    BuildFailed,
    BuildSpec,
    Device,
    Engine,
    EngineInfo,
    Feed,
    Inputs,
    Unsupported,
    typed_inputs,
)
from pytest_trt.engines.recipes import (
    Recipe,
    RecipeUnavailable,
    apply_graph_recipe,
    cpu_int8_saturates,
    graph_recipe,
)
from pytest_trt.models.zoo import ModelSpec

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


class OrtFeed(Feed):
    def __init__(self, inputs: list[tuple[str, Any]], x: Inputs) -> None:
        names = [n for n, _ in inputs]
        arrays = typed_inputs(x, [t for _, t in inputs], names)
        self.feed = dict(zip(names, arrays, strict=True))
        self.batch = int(arrays[0].shape[0])


class OrtEngine(Engine):
    def __init__(self, session: Any, device: Device, info: EngineInfo) -> None:
        self.session = session
        self.device = device
        self.info = info
        self.inputs = [(i.name, _ORT_DTYPES.get(i.type)) for i in session.get_inputs()]

    def make_feed(self, x: Inputs) -> OrtFeed:
        return OrtFeed(self.inputs, x)

    def load(self, feed: Feed, x: np.ndarray) -> None:
        assert isinstance(feed, OrtFeed)
        dst = feed.feed[self.inputs[0][0]]
        np.copyto(dst, x.reshape(dst.shape), casting="same_kind")

    def h2d(self, feed: Feed) -> None:
        """Inputs stay in host memory: ORT copies them itself (``io = host``)."""

    def infer(self, feed: Feed) -> Any:
        assert isinstance(feed, OrtFeed)
        return self.session.run(None, feed.feed)

    def d2h(self, out: Any) -> list[np.ndarray]:
        return [np.asarray(o) for o in out]

    def sync(self) -> None:
        """``session.run`` is synchronous."""


def _providers(device: Device) -> list[str]:
    import onnxruntime as ort

    have = ort.get_available_providers()
    if device.is_cuda and "CUDAExecutionProvider" in have:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    precisions = ("fp32", "fp16", "bf16", "int8")
    uses_opt_level = True

    def availability(self) -> Availability:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            return Availability(False, reason=f"onnxruntime not importable: {exc}")
        return Availability(True, f"{ort.__version__} ({', '.join(ort.get_available_providers())})")

    def unsupported(self, spec: BuildSpec, model: ModelSpec, device: Device) -> str | None:
        try:
            self.recipe(spec)
        except Unsupported as exc:
            return str(exc)
        return super().unsupported(spec, model, device)

    def recipe(self, spec: BuildSpec) -> Recipe:
        try:
            # int8: its own quantizer by default (ModelOpt's Q/DQ graphs carry fp16 tensors the CPU provider
            # runs slowly); the CPU provider's fused int8 kernels saturate on x86 without VNNI: 7-bit weights
            # avoid it.  fp16: ModelOpt AutoCast when installed (onnxconverter-common mistypes a graph output
            # that other nodes also consume, e.g. a hidden state returned beside the logits).
            auto = "ort" if spec.precision == "int8" else "auto"
            tool = auto if spec.recipe_tool == "auto" else spec.recipe_tool
            return graph_recipe(spec.precision, spec.calib_method, tool, cpu_int8_saturates())
        except RecipeUnavailable as exc:
            raise Unsupported(f"onnxruntime {spec.precision}: {exc}") from exc

    def build(self, ctx: BuildContext) -> OrtEngine:
        import onnxruntime as ort

        recipe = self.recipe(ctx.spec)
        calib = ctx.calibration() if recipe.graph == "qdq-int8" else None
        t0 = time.perf_counter()
        model = apply_graph_recipe(ctx.cache, ctx.onnx, recipe, calib)
        recipe_seconds = time.perf_counter() - t0
        levels = [
            ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        ]
        so = ort.SessionOptions()
        so.graph_optimization_level = (
            levels[ctx.spec.opt_level]
            if ctx.spec.opt_level < 3
            else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        so.log_severity_level = 3
        optimized = model.path.with_name(model.path.name + f".ortopt{ctx.spec.opt_level}.{id(self)}.tmp")
        so.optimized_model_filepath = str(optimized)
        t1 = time.perf_counter()
        try:
            sess = ort.InferenceSession(str(model.path), so, providers=_providers(ctx.device))
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NotImplemented types
            msg = str(exc)
            hint = "an operator or type this onnxruntime lacks" if "NOT_IMPLEMENTED" in msg else "see the log"
            raise BuildFailed(
                f"onnxruntime could not load {model.path.name} ({hint}): {msg[:800]}",
                [msg],
                "bad_alloc" in msg,
            ) from exc
        session_seconds = time.perf_counter() - t1
        layers = None
        try:
            import onnx

            layers = len(onnx.load(str(optimized), load_external_data=False).graph.node)
        except Exception:
            pass  # the optimized-model dump is a nicety; not every provider writes it
        finally:
            optimized.unlink(missing_ok=True)
            optimized.with_name(optimized.name + ".data").unlink(missing_ok=True)
        from pytest_trt.engines.recipes import count_qdq_nodes

        extra: dict[str, Any] = {
            "providers": sess.get_providers(),
            "recipe_seconds": round(recipe_seconds, 4),
            "session_seconds": round(session_seconds, 4),
            "graph_nodes": model.node_count,
            "graph_params": model.param_count,
            "graph_bytes": model.file_size,
        }
        if recipe.graph == "qdq-int8":
            extra["qdq_nodes"] = count_qdq_nodes(model.path)
            assert calib is not None
            extra["calibration"] = {
                "source": calib.source,
                "samples": len(calib),
                "method": recipe.calib_method,
            }
        info = EngineInfo(
            backend=self.name,
            backend_version=ort.__version__,
            recipe=recipe,
            build_seconds=recipe_seconds + session_seconds,
            cached=not model.built and recipe.graph != "as-exported",
            plan_bytes=model.file_size,
            layers=layers,
            engine_params=model.param_count,
            io="host",
            extra=extra,
        )
        return OrtEngine(sess, ctx.device, info)
