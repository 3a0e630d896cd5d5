"""Where a session times its cases: the timing workers set up at the end of collection (before anything
touches CUDA), the sentinel's second timing ahead of every result file, and what the header and the
summary say about both; and the rule that a session which measured nothing does not look green."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from pytest_trt.plugin.fixtures import SESSION_KEY, SETTINGS_KEY, TrtSession


def isolating(config: pytest.Config) -> bool:
    """Timing workers for this session? Not for a collection only."""
    s = config.stash[SETTINGS_KEY]
    wanted = s.isolate == "on" or (s.isolate == "gpu" and s.device.is_cuda)
    return wanted and not config.option.collectonly


def start_warmup(config: pytest.Config) -> None:
    from pytest_trt.hardware.cuda_warmup import Warmup

    # overlaps collection and the first model's set-up; TrtSession.engine waits for it
    config.stash[SESSION_KEY].warmup = Warmup(config.stash[SETTINGS_KEY].device.torch)


def start_isolation(config: pytest.Config) -> None:
    """Fork the timing server now: every model is registered, and nothing has touched CUDA yet."""
    from pytest_trt.plugin.timed import Isolation

    sess = config.stash[SESSION_KEY]
    sess.isolation = Isolation(sess)
    if sess.settings.device.is_cuda:
        start_warmup(config)


def timing_lines(config: pytest.Config) -> list[str]:
    sess = config.stash[SESSION_KEY]
    lines = [f"pytest-trt timing: {timing_mode(config)}"]
    if sess.isolation is not None and sess.isolation.reason:
        lines.append(f"  not isolated: {sess.isolation.reason}")
    drift = sess.sentinel.drift if sess.sentinel is not None else None
    if drift is not None and "error" in drift:
        lines.append(f"pytest-trt sentinel: {drift['case']} could not be timed again: {drift['error']}")
    elif drift is not None:
        from pytest_trt.plugin.timed import marks_run

        if drift["ok"]:
            verdict = "within the run's noise"
        elif marks_run(drift):
            verdict = "DRIFTED: every result is marked invalid"
        else:
            verdict = (
                "drifted; a host engine's figure moves between processes by this much, results not marked"
            )
        lines.append(
            f"pytest-trt sentinel: {drift['case']} {drift['first_median_ms']:.4g} ms first, "
            f"{drift['last_median_ms']:.4g} ms at the end ({drift['drift']:.2%}; allowed {drift['allowed']:.2%}): "
            + verdict
        )
    return lines


def timing_mode(config: pytest.Config) -> str:
    s = config.stash[SETTINGS_KEY]
    if isolating(config):
        which = "every engine" if s.isolate == "on" else "each GPU engine (host engines in this process)"
        return f"isolated: {which} timed in a worker that ran nothing before it (--trt-isolate {s.isolate})"
    if s.isolate == "gpu":  # a session without a GPU: its host engines are timed here
        return "in this process: host engines, whose figures isolation does not settle (--trt-isolate gpu)"
    return "shared: every case timed in this process, after whatever ran before it (--trt-isolate off)"


class BeforeResultFiles:
    """Registered as its own plugin: runs ahead of every ``pytest_sessionfinish`` (pytest-benchmark
    writes its JSON in a wrapper there): the sentinel's second timing, then the timing workers end."""

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Generator[None, Any, Any]:
        sess = session.config.stash.get(SESSION_KEY, None)
        if sess is not None and sess.sentinel is not None and exitstatus != pytest.ExitCode.INTERRUPTED:
            from pytest_trt.plugin.timed import check_sentinel

            check_sentinel(sess)
        if sess is not None and sess.isolation is not None:
            sess.isolation.close()
        yield


def nothing_measured(sess: TrtSession) -> bool:
    """Every case was skipped: no timing, no build, no verdict (a run like that must not look green)."""
    return bool(sess.records) and all(r["status"] in ("skipped", "pending") for r in sess.records.values())
