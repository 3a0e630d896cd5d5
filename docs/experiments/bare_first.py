"""The suite's torch figures against the bare figure they must match: the same module and weights timed
first in a fresh process (:func:`pytest_trt.measure.bare.first_in_process`).  Run on a GPU:

    python docs/experiments/bare_first.py OUT.json resnet152 fp32,fp16 1,32,256 [SUITE.json]

``SUITE.json`` is a ``--benchmark-json`` file of ``pytest benchmarks -k resnet152``; each row then holds
the suite's median beside the bare one, their ratio and the timing context the suite used.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pytest_trt.measure.bare import first_in_process


def main(out: str, model: str, precisions: str, batches: str, suite: str | None = None) -> None:
    rows: list[dict[str, Any]] = []
    for prec in precisions.split(","):
        for batch in map(int, batches.split(",")):
            try:
                rows.append(first_in_process(model, prec, batch))
            except RuntimeError as exc:
                rows.append({"precision": prec, "batch": batch, "error": str(exc)})
            print(prec, batch, rows[-1].get("bare_ms"), flush=True)
    if suite:
        with open(suite) as f:
            ran = json.load(f)["benchmarks"]
        for r in rows:
            for bm in ran:
                ei = bm["extra_info"]
                key = (ei.get("model"), ei.get("backend"), ei.get("precision"), ei.get("batch"))
                if key == (model, "torch", r["precision"], r["batch"]) and "bare_ms" in r:
                    r["suite_ms"] = ei["latency_ms"]["model"]["median"]
                    r["ratio"] = r["suite_ms"] / r["bare_ms"]
                    r["context"] = (ei.get("timing") or {}).get("context", {}).get("mode")
    with open(out, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
