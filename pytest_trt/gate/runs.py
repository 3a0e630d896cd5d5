"""Stored runs: the result format's schema and status vocabulary, writing a run file, and reading one back.

Light on purpose (no torch, no numpy): ``pytest-trt compare``, ``report`` and the GPU launcher read runs
without loading an engine library.
"""

from __future__ import annotations

import glob
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_trt.cache import atomic_write_bytes

SCHEMA = "pytest-trt/1"
#: every status a case record can carry, in the order a case can reach them
STATUSES = (
    "pending",  # set up, not finished (a crash or an interrupt left it so)
    "ok",
    "quality_failed",
    "built",  # a real plan was built (build time, plan size recorded) but cannot run on this machine
    "build_failed",
    "oom",
    "run_failed",
    "usage_error",  # the case's inputs or options cannot be used (the message says which)
    "invalid_model",  # a user's model failed its collection-time checks
    "skipped",
)


def jsonable(obj: Any) -> Any:
    """Replace NaN/inf with None so the file is strict JSON (pytest-benchmark's loader is strict)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def json_bytes(payload: Mapping[str, Any]) -> bytes:
    """A run (or any results payload) as strict JSON."""
    return json.dumps(jsonable(payload), indent=1, default=str).encode()


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write a run (or any results payload) as strict JSON, atomically."""
    atomic_write_bytes(path, json_bytes(payload))


class ResultsError(ValueError):
    """A results file is unreadable or not pytest-benchmark/pytest-trt JSON; the message names it."""


def expand_paths(patterns: Iterable[str]) -> list[Path]:
    """Result files named by paths or globs (a glob matching nothing is an error naming it)."""
    out: list[Path] = []
    for p in patterns:
        matches = sorted(glob.glob(p)) if any(ch in p for ch in "*?[") else [p]
        if not matches:
            raise ResultsError(f"{p}: no files match this pattern")
        out.extend(Path(m) for m in matches)
    return out


def load_run(path: Path | str) -> dict[str, Any]:
    """Load one pytest-benchmark JSON file (or a ``--trt-json`` file, read as a run without timings),
    checking it is one (with a message naming the file)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ResultsError(f"{p}: a directory, not a results file") from None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{p}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ResultsError(f"{p}: nested too deeply to be a results file") from None
    if isinstance(data, dict) and "benchmarks" not in data and isinstance(data.get("cases"), list):
        # a --trt-json file: every case and the machine, no timings (a run that only built, say)
        data = {"machine_info": data.get("machine_info", {}), "benchmarks": [], "pytest_trt": data}
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("benchmarks"), list)
        or "machine_info" not in data
    ):
        raise ResultsError(
            f"{p}: not a pytest-benchmark JSON file (expected 'machine_info' and a 'benchmarks' list; "
            "write it with pytest --benchmark-json=FILE or --trt-json=FILE)"
        )
    trt = data.get("pytest_trt")
    if trt is not None and str(trt.get("schema", "")).split("/")[0] != SCHEMA.split("/")[0]:
        raise ResultsError(
            f"{p}: pytest_trt section has unknown schema {trt.get('schema')!r} (expected {SCHEMA})"
        )
    data["_path"] = str(p)
    return data


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else math.nan
