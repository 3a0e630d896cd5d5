"""Result files that survive: pytest-benchmark's ``--benchmark-json`` and our ``--trt-json`` are written
atomically (a temporary file beside the target, then a rename), so a full disk or a killed run leaves
the previous file whole; a file that cannot be written is saved in the temporary directory instead,
and the summary says where every result went.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_trt.cache import atomic_write_bytes


@dataclass
class Saved:
    """Where each result file went this session, for the summary."""

    lines: list[str] = field(default_factory=list)
    lost: bool = False  # a file could be written neither where asked nor in the temporary directory

    def save(self, path: Path, data: bytes, what: str) -> None:
        try:
            atomic_write_bytes(path, data)
            self.lines.append(f"{what}: {path}")
            return
        except OSError as exc:
            why = exc.strerror or str(exc)
        kept = " (the previous file is kept whole)" if path.is_file() else ""
        fallback = Path(tempfile.gettempdir()) / f"pytest-trt-{os.getpid()}-{path.name}"
        try:
            atomic_write_bytes(fallback, data)
            self.lines.append(f"{what}: could not write {path}: {why}{kept}; saved to {fallback} instead")
        except OSError as exc2:
            self.lost = True
            self.lines.append(
                f"{what}: could not write {path}: {why}{kept}, nor {fallback}: {exc2.strerror or exc2}; "
                "these results are lost: free space and run again"
            )


def guard_benchmark_json(config: pytest.Config, saved: Saved) -> None:
    """Put our atomic writer behind pytest-benchmark's ``--benchmark-json`` (its own truncates the file
    first and leaves a part of it on a full disk)."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or not getattr(session, "json", None) or not hasattr(session, "save_json"):
        return
    given = session.json
    if hasattr(given, "write"):  # pytest-benchmark <= 5.2 opened (and emptied) the file at start-up
        target = Path(given.name)
        given.close()
    else:
        target = Path(given)

    def save_json(output_json: Any, _dumps: Callable[..., str] = json.dumps) -> None:
        try:
            from pytest_benchmark.utils import safe_dumps as dumps
        except ImportError:  # an older pytest-benchmark: plain JSON serves
            dumps = _dumps
        saved.save(target, dumps(output_json, ensure_ascii=True, indent=4).encode(), "--benchmark-json")

    session.save_json = save_json
