"""The bare figure a result must match: a model's module and weights timed *first in a fresh process*.

The model is loaded as pytest-trt loads it (``zoo.load_model``: seeded random weights with BatchNorm
statistics re-estimated, unless the model has its own), cast like the torch backend (TF32 as the suite
sets it), one inference captured in a CUDA graph on a side stream, and back-to-back replays timed between
two events (the median of 7 blocks of ~0.3 s).  :func:`first_in_process` runs it in a new interpreter,
so nothing else has run in its CUDA context.  ``python -m pytest_trt.measure.bare MODEL PRECISION BATCH``
prints the figure as JSON.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import Any


def time_first(model: str, precision: str, batch: int, weights: str = "random") -> dict[str, Any]:
    """In this process (call it first): the median milliseconds of one CUDA-graph replay."""
    import torch

    from pytest_trt.models import datasets, zoo

    spec = zoo.get(model)
    module, source = zoo.load_model(spec, weights, seed=0)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # the suite's default
    module = module.to("cuda", dtype).eval()
    samples = datasets.eval_samples(datasets.DataConfig(None, 64, 64, 0), spec.input.shape, spec.data, None)
    x = torch.from_numpy(samples.cycled(batch)[0]).to("cuda", dtype)
    s = torch.cuda.Stream()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def block(n: int) -> float:
        a.record(s)
        for _ in range(n):
            g.replay()
        b.record(s)
        b.synchronize()
        return float(a.elapsed_time(b)) / n

    with torch.inference_mode(), torch.cuda.stream(s):
        module(x)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=s):
            module(x)
        block(20)  # warm-up
        n = max(20, round(300 / block(10)))  # ~0.3 s a block
        blocks = [block(n) for _ in range(7)]
    return {"model": model, "precision": precision, "batch": batch, "bare_ms": statistics.median(blocks),
            "weights": source, "replays_per_block": n}  # fmt: skip


def first_in_process(model: str, precision: str, batch: int, weights: str = "random") -> dict[str, Any]:
    """:func:`time_first` in a new interpreter: the figure of a deployment that runs only this."""
    p = subprocess.run(
        [sys.executable, "-m", "pytest_trt.measure.bare", model, precision, str(batch), weights],
        capture_output=True,
        text=True,
        check=False,
    )
    if p.returncode != 0:
        raise RuntimeError(f"the bare loop of {model} {precision} b{batch} failed: {p.stderr[-1500:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(time_first(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:5])))
