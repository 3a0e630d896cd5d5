"""Why does a configuration's GPU time depend on what ran before it in the process?  (issue: isolated timing)

Each variant runs in a fresh process: it does some *prelude* work on the GPU, then times ResNet152 at fp16,
batch 1, as a CUDA-graph replay (two events around 300 back-to-back replays, median of 7 such blocks), and
lists the kernels one eager fp16 forward launches (torch.profiler).  Comparing the variants tells which
piece of state the prelude leaves behind: cuDNN's kernel choice (the kernel lists differ), the caching
allocator (an allocation-only prelude reproduces it), TF32 switches, or anything run first.

The second part times EfficientNet-Lite0 with its ImageNet-trained weights, with pytest-trt's calibrated
random weights and with plain initialisation, each first in its own process (what a random-weight figure
stands for).  Run on a GPU: ``python docs/experiments/order_effect.py OUT.json``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Any

PRELUDES = {
    "none": "ResNet152 fp16 b1 is the first thing the process runs",
    "fp32": "ResNet152 fp32 (TF32 off) run eagerly 50 times first",
    "fp32_tf32": "ResNet152 fp32 with TF32 on, 50 eager runs first",
    "fp32_graph": "ResNet152 fp32 (TF32 off) captured and replayed 300 times first (what the suite's baseline does)",
    "fp32_empty_cache": "as fp32, then torch.cuda.empty_cache() and a new module",
    "fp16": "another ResNet152 fp16 module run 50 times first (same precision)",
    "resnet50_fp32": "a different model (ResNet50 fp32) run 50 times first",
    "alloc_only": "no compute: 6 GiB allocated and freed through the caching allocator first",
    "fp32_conv_once": "a single fp32 3x3 convolution first",
    "busy_matmul": "no model: 1 s of large fp16 matmuls first (does load alone do it: clocks, power?)",
    "fp32_sleep10": "as fp32, then 10 s idle before the fp16 model is built",
    "fp16_twice": "the fp16 model timed, then a second fp16 model built and timed (reported: the second)",
}
# CUDA loads kernels lazily by default: with EAGER every module is loaded at start, whatever ran first
EAGER = ("none", "fp32")


def _resnet152(dtype: Any, device: str) -> Any:
    import torch
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet152(weights=None).eval().to(device=device, dtype=dtype)


def _graph_median_ms(model: Any, x: Any, replays: int = 300, blocks: int = 7) -> float:
    import torch

    s = torch.cuda.Stream()
    with torch.no_grad(), torch.cuda.stream(s):
        for _ in range(5):
            model(x)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=s):
            model(x)
        for _ in range(20):
            g.replay()
        torch.cuda.synchronize()
        out = []
        for _ in range(blocks):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record(s)
            for _ in range(replays):
                g.replay()
            b.record(s)
            b.synchronize()
            out.append(a.elapsed_time(b) / replays)
    return statistics.median(out)


def _kernels(model: Any, x: Any) -> list[str]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        model(x)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            model(x)
            torch.cuda.synchronize()
    return sorted({e.name for e in prof.events() if e.device_type.name == "CUDA"})


def _prelude(name: str) -> None:
    import torch

    dev = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = name == "fp32_tf32"
    x32 = torch.randn(1, 3, 224, 224, device=dev)
    if name in ("fp32", "fp32_tf32", "fp32_empty_cache"):
        m = _resnet152(torch.float32, dev)
        with torch.no_grad():
            for _ in range(50):
                m(x32)
        torch.cuda.synchronize()
        if name == "fp32_empty_cache":
            del m
            torch.cuda.empty_cache()
    elif name == "fp32_graph":
        _graph_median_ms(_resnet152(torch.float32, dev), x32, replays=300, blocks=1)
    elif name == "fp16":
        m = _resnet152(torch.float16, dev)
        with torch.no_grad():
            for _ in range(50):
                m(x32.half())
    elif name == "resnet50_fp32":
        import torchvision

        m = torchvision.models.resnet50(weights=None).eval().to(dev)
        with torch.no_grad():
            for _ in range(50):
                m(x32)
    elif name == "alloc_only":
        blocks = [torch.empty(256 << 20, dtype=torch.uint8, device=dev) for _ in range(24)]
        del blocks
    elif name == "fp32_conv_once":
        torch.nn.functional.conv2d(x32, torch.randn(64, 3, 3, 3, device=dev))
    elif name == "busy_matmul":
        a = torch.randn(8192, 8192, device=dev, dtype=torch.float16)
        t0 = time.time()
        while time.time() - t0 < 1.0:
            a @ a
            torch.cuda.synchronize()
    elif name == "fp32_sleep10":
        _prelude("fp32")
        time.sleep(10)
    elif name == "fp16_twice":
        m = _resnet152(torch.float16, dev)
        _graph_median_ms(m, x32.half())
    torch.cuda.synchronize()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False


def child_order(name: str) -> dict[str, Any]:
    import torch

    _prelude(name)
    model = _resnet152(torch.float16, "cuda")
    x = torch.randn(1, 3, 224, 224, device="cuda", dtype=torch.float16)
    ms = _graph_median_ms(model, x)
    return {"prelude": name, "fp16_b1_graph_ms": ms, "kernels": _kernels(model, x)}


def child_weights(kind: str, precision: str, batch: int) -> dict[str, Any]:
    import torch

    from pytest_trt.models import zoo

    spec = zoo.get("efficientnet_lite0")
    weights = {"trained": "pretrained", "calibrated_random": "random"}.get(kind)
    if weights is None:  # plain initialisation: the factory's own init, BatchNorm at mean 0 / var 1
        torch.manual_seed(0)
        model = spec.factory().eval()
    else:
        model, _ = zoo.load_model(spec, weights, seed=0)
    dtype = torch.float16 if precision == "fp16" else torch.float32
    model = model.to("cuda", dtype)
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1)).to("cuda", dtype)
    with torch.no_grad():
        y = model(x).float()
    return {
        "weights": kind,
        "precision": precision,
        "batch": batch,
        "graph_ms": _graph_median_ms(model, x),
        "logit_abs_max": float(y.abs().max()),
    }


def _spawn(*args: str) -> dict[str, Any]:
    p = subprocess.run(
        [sys.executable, __file__, "child", *args], capture_output=True, text=True, check=False
    )
    if p.returncode != 0:
        return {"args": list(args), "error": p.stderr[-2000:]}
    return json.loads(p.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _summary(order: list[dict[str, Any]]) -> dict[str, Any]:
    base = [r for r in order if r.get("prelude") == "none" and "kernels" in r]
    ref_kernels = set(base[0]["kernels"]) if base else set()
    out: dict[str, Any] = {}
    for name, what in PRELUDES.items():
        runs = [r for r in order if r.get("prelude") == name and "fp16_b1_graph_ms" in r]
        errors = [r["error"] for r in order if r.get("args") == ["order", name]]
        k = set(runs[0]["kernels"]) if runs else set()
        out[name] = {
            "what": what,
            "fp16_b1_graph_ms": [round(r["fp16_b1_graph_ms"], 4) for r in runs],
            "kernels_added_vs_first": sorted(k - ref_kernels) if runs else None,
            "kernels_missing_vs_first": sorted(ref_kernels - k) if runs else None,
            "errors": errors,
        }
    return out


def mechanism(out_path: str) -> None:
    """The narrower variants, once each, plus lazy vs eager kernel loading."""
    rows: list[dict[str, Any]] = []
    for name in ("none", "busy_matmul", "fp32_sleep10", "fp16_twice", "fp32"):
        rows.append({**_spawn("order", name), "loading": "lazy"})
        print(name, "lazy", rows[-1].get("fp16_b1_graph_ms"), rows[-1].get("error", "")[-300:], flush=True)
    for name in EAGER:
        rows.append({**_spawn("order", name, env={"CUDA_MODULE_LOADING": "EAGER"}), "loading": "eager"})
        print(name, "eager", rows[-1].get("fp16_b1_graph_ms"), rows[-1].get("error", "")[-300:], flush=True)
    for r in rows:
        r.pop("kernels", None)
    with open(out_path, "w") as f:
        json.dump(rows, f, indent=1)


def main(out_path: str, repeats: int = 2, weights_only: bool = False) -> None:
    """Every result is written as soon as it exists: a run stopped at its time limit keeps what it had."""
    t0 = time.time()
    order: list[dict[str, Any]] = []
    weights: list[dict[str, Any]] = []

    def save() -> None:
        with open(out_path, "w") as f:
            json.dump(
                {"order": _summary(order), "weights": weights, "seconds": round(time.time() - t0, 1)},
                f,
                indent=1,
            )

    for _ in range(repeats if not weights_only else 0):
        for name in list(PRELUDES)[:9]:
            order.append(_spawn("order", name))
            print(name, order[-1].get("fp16_b1_graph_ms"), order[-1].get("error", "")[-300:], flush=True)
            save()
    for kind in ("trained", "calibrated_random", "plain_init"):
        for prec in ("fp32", "fp16"):
            for batch in (1, 32):
                weights.append(_spawn("weights", kind, prec, str(batch)))
                w = weights[-1]
                print(
                    kind,
                    prec,
                    batch,
                    w.get("graph_ms"),
                    w.get("logit_abs_max"),
                    w.get("error", "")[-300:],
                    flush=True,
                )
                save()
    for name, s in _summary(order).items():
        added, missing = s["kernels_added_vs_first"] or [], s["kernels_missing_vs_first"] or []
        print(f"{name:18} {s['fp16_b1_graph_ms']}  +{len(added)} -{len(missing)} kernels", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "child":
        kind = sys.argv[2]
        if kind == "order":
            print(json.dumps(child_order(sys.argv[3])))
        else:
            print(json.dumps(child_weights(sys.argv[3], sys.argv[4], int(sys.argv[5]))))
    elif len(sys.argv) > 2 and sys.argv[2] == "mechanism":
        mechanism(sys.argv[1])
    elif len(sys.argv) > 2 and sys.argv[2] == "weights":
        main(sys.argv[1], weights_only=True)
    else:
        main(sys.argv[1])
