"""A long run that never looks stuck, and where its wall time went.

After a benchmark case, when the last progress line is more than ``EVERY_S`` old (or with ``-v``),
one line says which case ended, how long it took and in what, how many cases are left and when the
run should end at the pace so far.  The summary lists the slowest cases with their split (engine,
quality: baseline / engine outputs / reference / metrics, timing: engine rebuilt in its worker /
feed / telemetry / prepare (CUDA graph capture, garbage collection) / warm-up / loops / async
throughput / worker handover).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

EVERY_S = 20.0


def split_text(wall: Mapping[str, Any]) -> str:
    """``engine 1.2 s, quality 3.4 s (reference 2.9), timing 5.0 s (loops 3.1)``: the stages, with the
    largest part of the quality and timing stages."""
    parts = []
    for stage in ("engine", "quality", "timing"):
        if stage in wall:
            text = f"{stage} {wall[stage]:.1f} s"
            inner = wall.get(f"{stage}_parts")
            if inner:
                name, secs = max(inner.items(), key=lambda kv: kv[1])
                if secs >= 0.1:
                    text += f" ({name.replace('_', ' ')} {secs:.1f})"
            parts.append(text)
    return ", ".join(parts)


def _total(wall: Mapping[str, Any]) -> float:
    """A case's wall seconds: its stages (``*_parts`` are inside their stage, not beside it)."""
    return sum(v for v in wall.values() if isinstance(v, float))


class Progress:
    def __init__(self, total: int, verbose: bool) -> None:
        self.total, self.verbose = total, verbose
        self.done = 0
        self.t0 = self.last = time.monotonic()

    def case_done(self, case_id: str, wall: Mapping[str, Any] | None) -> str | None:
        """The progress line to print after this case, or None (too soon since the last one)."""
        self.done += 1
        now = time.monotonic()
        if not self.verbose and now - self.last < EVERY_S and self.done < self.total:
            return None
        self.last = now
        elapsed = now - self.t0
        left = self.total - self.done
        eta = elapsed / self.done * left if self.done else 0.0
        end = time.strftime("%H:%M:%S", time.localtime(time.time() + eta))
        took = f" in {_total(wall):.1f} s" if wall else ""
        how = f" ({split_text(wall)})" if wall else ""
        return (
            f"[pytest-trt] {self.done}/{self.total} cases, {elapsed:.0f} s elapsed, {left} left, "
            f"ends ~{end}; last: {case_id}{took}{how}"
        )


def slowest(records: Iterable[Mapping[str, Any]], n: int = 10) -> list[str]:
    """The ``n`` slowest measured cases, each with where its time went."""
    timed = []
    for r in records:
        wall = (r.get("extra_info") or {}).get("wall_s") or {}
        total = _total(wall)
        if total > 0:
            timed.append((total, str(r.get("id")), wall))
    timed.sort(reverse=True)
    return [f"  {total:7.1f} s  {case}: {split_text(wall)}" for total, case, wall in timed[:n]]
