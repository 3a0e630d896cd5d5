"""Where a session's wall-clock time goes: start-up, each case, the end (``pytest_trt.timeline`` in the
JSON), and for ``pytest-trt run`` how evenly the GPU processes shared the work.

Times are Unix epochs (seconds), so the processes of one run, and the launcher, share one clock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any


def process_started() -> float | None:
    """When this process started (Linux ``/proc``, to the clock tick), or None where that is not known."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        since_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time in ticks
    except (OSError, ValueError, IndexError):
        return None
    # The start is counted from boot; /proc/stat's boot time is whole seconds (up to 1 s off), so the
    # boot instant comes from the boot-time clock instead.
    boottime = getattr(time, "CLOCK_BOOTTIME", None)  # Linux only, as /proc is
    if boottime is None:
        return None
    return time.time() - (time.clock_gettime(boottime) - since_boot)


class Timeline:
    """Marks of one pytest process and the wall time of each matrix case."""

    def __init__(self) -> None:
        self.marks: dict[str, float | None] = {"process_started": process_started()}
        self.cases: list[dict[str, Any]] = []
        self._open: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.time())

    def case_started(self, nodeid: str, at: float | None = None) -> None:
        at = time.time() if at is None else at
        self.marks.setdefault("first_case_started", at)
        self._open[nodeid] = at

    def case_finished(self, nodeid: str, at: float | None = None) -> None:
        start = self._open.pop(nodeid, None)
        if start is not None:
            end = time.time() if at is None else at
            self.cases.append({"nodeid": nodeid, "started": start, "seconds": end - start})
            self.marks["last_case_finished"] = end

    def as_dict(self) -> dict[str, Any]:
        return {"marks": dict(self.marks), "cases": list(self.cases)}


def balance(
    runs: Sequence[Mapping[str, Any]], labels: Sequence[str], launched: float
) -> list[dict[str, Any]]:
    """Per GPU process of one ``pytest-trt run``: seconds from the launch to its first case, seconds in
    cases, and seconds it sat idle at the end while another process still worked."""
    rows = []
    for run, label in zip(runs, labels, strict=True):
        t = (run.get("pytest_trt") or {}).get("timeline") or {}
        marks = t.get("marks") or {}
        rows.append(
            {
                "label": label,
                "first": marks.get("first_case_started"),
                "last": marks.get("last_case_finished"),
                "cases": len(t.get("cases") or []),
                "busy": sum(c.get("seconds", 0.0) for c in t.get("cases") or []),
            }
        )
    ends = [r["last"] for r in rows if r["last"] is not None]
    out = []
    for r in rows:
        out.append(
            {
                "label": r["label"],
                "cases": r["cases"],
                "startup_s": None if r["first"] is None else r["first"] - launched,
                "cases_s": r["busy"],
                "idle_at_end_s": None if r["last"] is None or not ends else max(ends) - r["last"],
            }
        )
    return out


def render_balance(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} s"

    return [
        f"{r['label']}: start-up {s(r['startup_s'])}, {r['cases']} cases {s(r['cases_s'])}, "
        f"idle at the end {s(r['idle_at_end_s'])}"
        for r in rows
    ]
