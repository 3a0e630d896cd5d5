"""The ILogger every builder and runtime gets: it keeps TensorRT's records for error messages."""

from __future__ import annotations

import threading
from typing import Any

from pytest_trt.engines.tensorrt import versions


def make_logger(severity: str = "WARNING") -> Any:
    """An ILogger that keeps every record (the logger must outlive builders and runtimes)."""
    trt = versions.trt

    class CapturingLogger(trt.ILogger):  # type: ignore[misc,name-defined,unused-ignore]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.records: list[tuple[Any, str]] = []
            self.level = getattr(trt.ILogger.Severity, severity)
            self.lock = threading.Lock()

        def log(self, sev: Any, msg: str) -> None:  # called from TensorRT's threads
            if sev <= self.level:
                with self.lock:
                    self.records.append((sev, msg))

        def errors(self) -> list[str]:
            return [m for s, m in self.records if s <= trt.ILogger.Severity.ERROR]

        def warnings(self) -> list[str]:
            return [m for s, m in self.records if s == trt.ILogger.Severity.WARNING]

    return CapturingLogger()
