"""The bare figure a suite result must match: the same module and weights, timed first in its own process.

For each (precision, batch) a fresh process loads the model as pytest-trt does (``zoo.load_model``,
seeded random weights with BatchNorm statistics re-estimated, TF32 as the suite sets it), casts it like
the torch backend, captures one inference in a CUDA graph on a side stream and times back-to-back
replays between two events (median over 7 blocks of ~0.3 s).  ``compare`` prints the suite's medians
from a ``--benchmark-json`` file beside these.  Run on a GPU:

    python docs/experiments/bare_first.py OUT.json resnet152 fp32,fp16 1,32,64,128,256 [SUITE.json]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import Any


def child(model: str, precision: str, batch: int) -> dict[str, Any]:
    import torch

    from pytest_trt.models import datasets, zoo

    spec = zoo.get(model)
    module, source = zoo.load_model(spec, "random", seed=0)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # the suite's default
    module = module.to("cuda", dtype).eval()
    samples = datasets.eval_samples(datasets.DataConfig(None, 64, 64, 0), spec.input.shape, spec.data, None)
    x = torch.from_numpy(samples.cycled(batch)[0]).to("cuda", dtype)
    s = torch.cuda.Stream()
    with torch.inference_mode(), torch.cuda.stream(s):
        module(x)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=s):
            module(x)
        for _ in range(20):
            g.replay()
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(s)
        for _ in range(10):
            g.replay()
        b.record(s)
        b.synchronize()
        n = max(20, round(300 / (a.elapsed_time(b) / 10)))  # ~0.3 s a block
        blocks = []
        for _ in range(7):
            a.record(s)
            for _ in range(n):
                g.replay()
            b.record(s)
            b.synchronize()
            blocks.append(a.elapsed_time(b) / n)
    return {"model": model, "precision": precision, "batch": batch, "bare_ms": statistics.median(blocks),
            "weights": source, "replays_per_block": n}  # fmt: skip


def main(out: str, model: str, precisions: str, batches: str, suite: str | None = None) -> None:
    rows = []
    for prec in precisions.split(","):
        for batch in map(int, batches.split(",")):
            p = subprocess.run(
                [sys.executable, __file__, "child", model, prec, str(batch)],
                capture_output=True,
                text=True,
                check=False,
            )
            rows.append(json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else
                        {"precision": prec, "batch": batch, "error": p.stderr[-1500:]})  # fmt: skip
    if suite:
        with open(suite) as f:
            ran = json.load(f)["benchmarks"]
        for r in rows:
            for bm in ran:
                ei = bm["extra_info"]
                if (ei.get("model"), ei.get("backend"), ei.get("precision"), ei.get("batch")) == (
                    model, "torch", r["precision"], r["batch"]
                ) and "bare_ms" in r:  # fmt: skip
                    r["suite_ms"] = ei["latency_ms"]["model"]["median"]
                    r["ratio"] = r["suite_ms"] / r["bare_ms"]
                    r["context"] = (ei.get("timing") or {}).get("context", {}).get("mode")
    with open(out, "w") as f:
        json.dump(rows, f, indent=1)
    for r in rows:
        print(r.get("precision"), r.get("batch"), r.get("bare_ms"), r.get("suite_ms"), r.get("ratio"), r.get("context"),
              r.get("error", "")[-300:])  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1] == "child":
        print(json.dumps(child(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
    else:
        main(*sys.argv[1:])
