"""EfficientNet-Lite0 int8 on onnxruntime's CPU kernels with 7-bit or 8-bit weights (docs/int8.md, "A CPU
without VNNI"): top-1 agreement and error against fp32 on the 36 photograph views, for the Q/DQ graph's
own arithmetic and for the fused engine, with every layer in int8 and with the stem and first depthwise
conv in float, and the fused engine's batch-1 latency on one thread.  Run after the suite exported the
model once: ``python docs/experiments/int8_no_vnni.py [CALIB_CROPS] [7|8]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from pytest_trt.engines.onnxrt.backend import KEEP_RECIPE
from pytest_trt.engines.ort_quantize import Quantizer
from pytest_trt.models import datasets, zoo


def main() -> None:
    ncal = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    bits = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    spec = zoo.get("efficientnet_lite0")
    x = datasets.photos(spec.input.shape, 36, 0).x
    calib = datasets.photos(spec.input.shape, ncal, 10_007, views="calib")
    cached = sorted((Path.home() / ".cache/pytest-trt/onnx").glob("*/*.onnx"))
    fp32 = next(
        p for p in cached if onnx.load(str(p), load_external_data=False).graph.node[0].op_type == "Conv"
    )
    base = _run(fp32, x, fused=False)
    convs = [n.name for n in onnx.load(str(fp32), load_external_data=False).graph.node if n.op_type == "Conv"]
    inputs = tuple(i.name for i in ort.InferenceSession(str(fp32)).get_inputs())
    out = Path(tempfile.mkdtemp())
    with Quantizer(fp32, inputs, calib, "minmax", unsigned_activations=True, reduce_range=bits == 7) as q:
        for excl in ((), tuple(convs[:2])):
            dst = out / f"q{len(excl)}.onnx"
            q.quantize(dst, exclude=excl)
            for fused in (False, True):
                o = _run(dst, x, fused)
                err = np.linalg.norm(o - base) / np.linalg.norm(base)
                agree = float((o.argmax(1) == base.argmax(1)).mean())
                print(f"w{bits} calib {ncal} float layers {len(excl)} {'fused' if fused else 'graph'}: "
                      f"agreement {agree:.3f} error {err:.4f}")  # fmt: skip
            print(f"  fused b1 one thread: {_latency_ms(dst, x[:1]):.2f} ms")


def _session(path: Path, fused: bool, threads: int = 0) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if fused else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    return ort.InferenceSession(
        str(path), so, providers=["CPUExecutionProvider"], disabled_optimizers=KEEP_RECIPE
    )


def _run(path: Path, x: np.ndarray, fused: bool) -> np.ndarray:
    s = _session(path, fused)
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[i : i + 6]})[0] for i in range(0, len(x), 6)])


def _latency_ms(path: Path, x: np.ndarray) -> float:
    s = _session(path, True, threads=1)
    name = s.get_inputs()[0].name
    times = []
    for _ in range(41):
        t0 = time.perf_counter()
        s.run(None, {name: x})
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]) * 1e3)


if __name__ == "__main__":
    main()
