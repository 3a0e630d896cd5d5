"""pytest entry point (``pytest11: trt``): options, markers, parametrization, header, summary, JSON hooks."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from pytest_trt.engines import registry as backends
from pytest_trt.engines.tensorrt import versions as trt_versions
from pytest_trt.gate.runs import json_bytes
from pytest_trt.measure.timing import VIRTUAL_CLOCK
from pytest_trt.plugin import matrix, options, progress, records, result_files, timing_setup, user_files
from pytest_trt.plugin.fixtures import (  # noqa: F401 - fixtures are registered by import
    SESSION_KEY,
    SETTINGS_KEY,
    TrtSession,
    trt_baseline,
    trt_cache,
    trt_case,
    trt_engine,
    trt_onnx,
    trt_run,
    trt_session,
    trt_settings,
)
from pytest_trt.plugin.settings import resolve

MARKERS = {
    "gpu": "needs a CUDA GPU; skipped with the reason where there is none",
    "tensorrt": "needs TensorRT; skipped with the reason where `import tensorrt` fails",
    "smoke": "CPU smoke tier: small models, minutes on 2 cores",
    "slow": "long-running (large models, full sweeps)",
    "trt_matrix(models=None, task=None, tag=None, backends=None, precisions=None, batches=None, profiles=None, "
    "opt_levels=None, static_batches=None, hws=None, dynamic_hw=False)": "the configurations this benchmark covers",
    "trt_quality(**{precision: [gate, ...]})": "quality gates for this benchmark, e.g. int8=['closeness@1>=90']",
}
CLOCKS_KEY = pytest.StashKey[Any]()
BENCH_MACHINE_KEY = pytest.StashKey[Any]()
RULE_KEY = pytest.StashKey[Any]()
_GATE_KEY = pytest.StashKey[Any]()
BASELINE_RULE_PREFIX = "--trt-baseline-"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_trt.plugin import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.addoptions(parser)
    # the regression rule of --trt-baseline: the same settings as `pytest-trt compare`, declared once there
    from pytest_trt.gate.rule_options import add_rule_options

    group = parser.getgroup("trt")
    # the user asked to gate this very run: it is judged even where its own validity checks complain
    add_rule_options(group.addoption, prefix=BASELINE_RULE_PREFIX, skip=("include-invalid",))


def pytest_configure(config: pytest.Config) -> None:
    from pytest_trt.run import shard

    shard.pin_xdist_worker()  # before anything creates a CUDA context
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    # conftests and plugins add their backends first, so --trt-backend accepts them
    config.hook.pytest_trt_register_backends(register=backends.register)
    settings = resolve(config)  # UsageError -> pytest exits 4 with the message
    config.stash[SETTINGS_KEY] = settings
    config.pluginmanager.register(timing_setup.BeforeResultFiles(), "pytest-trt-before-result-files")
    if settings.baseline is not None:
        config.stash[RULE_KEY] = _baseline_rule(config)
    if settings.onnx_files:
        user_files.add_onnx_files(config, settings)
    config.stash[SESSION_KEY] = TrtSession(settings, verbose=config.get_verbosity())
    if _saves_benchmarks(config):
        config.stash[BENCH_MACHINE_KEY] = _generic_machine_info()
    # with isolation the CUDA warm-up starts after the timing server is forked (collection's end)
    if settings.device.is_cuda and not config.option.collectonly and not timing_setup.isolating(config):
        timing_setup.start_warmup(config)
    if settings.lock_clocks and not hasattr(config, "workerinput"):
        from pytest_trt.hardware import clocks

        config.stash[CLOCKS_KEY] = clocks.lock(settings.lock_clocks, settings.device)
    config.stash[SESSION_KEY].timeline.mark("configured")


def pytest_sessionstart(session: pytest.Session) -> None:
    sess = session.config.stash.get(SESSION_KEY, None)
    if sess is not None:  # every plugin is configured now, pytest-benchmark's session included
        result_files.guard_benchmark_json(session.config, sess.saved)


def _baseline_rule(config: pytest.Config) -> Any:
    from pytest_trt.gate.rule_options import rule_from

    try:
        return rule_from(
            lambda dest: config.getoption(dest, None), prefix=BASELINE_RULE_PREFIX, include_invalid=True
        )
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_unconfigure(config: pytest.Config) -> None:
    from pytest_trt.models import user_models

    sess = config.stash.get(SESSION_KEY, None)
    if sess is not None and sess.isolation is not None:
        sess.isolation.close()  # also after an interrupted session

    user_models.forget()
    lock = config.stash.get(CLOCKS_KEY, None)
    if lock is not None:
        lock.restore()


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = config.stash[SETTINGS_KEY]
    lines = [
        f"pytest-trt: device {s.device.torch} ({s.device.name}); cache {config.stash[SESSION_KEY].cache.root}"
    ]
    for name in backends.names():
        mark = "*" if name in s.backends else " "
        lines.append(f"  {mark} {backends.availability(name).header(name)}")
    lines.append(
        f"  matrix defaults: precisions {','.join(s.precisions)}; batches {','.join(map(str, s.batches))}; "
        f"profiles {','.join(s.profiles)}; opt levels {','.join(map(str, s.opt_levels))}; weights {s.weights}"
    )
    lines.append(f"  timing: {timing_setup.timing_mode(config)}")
    lock = config.stash.get(CLOCKS_KEY, None)
    if lock is not None:
        lines.append(f"  clocks: {lock.message}")
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "trt_case" not in metafunc.fixturenames:
        return
    settings = metafunc.config.stash[SETTINGS_KEY]
    req = matrix.Request.from_marker(metafunc.definition.get_closest_marker("trt_matrix"))
    params = matrix.expand(req, settings)
    metafunc.parametrize("trt_case", params, indirect=True)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` = one correctness-only worker per GPU (timing is disabled under xdist anyway)."""
    from pytest_trt.hardware import telemetry

    n = len(telemetry.visible_handles())
    return n or None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from pytest_trt.run import shard

    s = config.stash[SETTINGS_KEY]
    problem = matrix.unknown_models(s)
    if problem:
        raise pytest.UsageError(problem)
    if s.shard is not None:
        index, count = s.shard
        where = shard.assign([it.nodeid for it in items], count)
        keep = [it for it in items if where[it.nodeid] == index]
        drop = [it for it in items if where[it.nodeid] != index]
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep
    if s.claim_dir is not None and s.claim_rank is not None:
        units = [_queue_unit(it) for it in items]
        items[:] = [items[i] for i in shard.cost_order(units)]
        items[:] = [items[i] for i in shard.queue_order(len(items), *s.claim_rank)]
    for item in items:
        if "trt_run" not in getattr(item, "fixturenames", ()):
            continue
        # GPU (or host) time reaches pytest-benchmark only through the virtual clock in pedantic mode.
        user = item.get_closest_marker("benchmark")
        kwargs = dict(user.kwargs) if user else {}
        kwargs["timer"] = VIRTUAL_CLOCK
        kwargs.setdefault("disable_gc", True)
        item.add_marker(pytest.mark.benchmark(**kwargs))


def _queue_unit(item: pytest.Item) -> tuple[str, str, float]:
    """(model, engine group, relative cost) of a collected case, for the shared queue's order."""
    from pytest_trt.run import shard

    case = getattr(getattr(item, "callspec", None), "params", {}).get("trt_case")
    if not isinstance(case, matrix.Case):
        return ("", item.nodeid, 0.0)  # not a matrix case: cheap, kept together
    return (case.model, shard.group_of(item.nodeid), shard.relative_cost(case.batch, case.precision))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Check the user's .npz data against every selected model (a usage error before anything runs);
    ``--trt-weights auto``: download the selected models' weights once, and say so once if it fails."""
    sess = session.config.stash.get(SESSION_KEY, None)
    if sess is None:
        return
    params = [
        getattr(getattr(item, "callspec", None), "params", {}).get("trt_case") for item in session.items
    ]
    cases = [c for c in params if isinstance(c, matrix.Case)]
    user_files.check_user_data(sess, cases)
    sess.progress = progress.Progress(len(cases), session.config.get_verbosity() > 0)
    if sess.settings.weights == "auto" and not hasattr(session.config, "workerinput"):
        names = sorted({c.model for c in cases})
        failures = sess.fetch_weights(names)
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        for name, reason in failures.items():
            line = f"pytest-trt: weights auto: {name}: {reason}; using seeded random weights"
            if tr is not None:
                tr.write_line(line, yellow=True)
    if timing_setup.isolating(session.config) and cases:
        timing_setup.start_isolation(session.config)  # the workers inherit the weights' download notes too


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """With --trt-claim-dir, a case another process has claimed is left to it (not run, not reported)."""
    s = item.config.stash[SETTINGS_KEY]
    if s.claim_dir is None or "trt_run" not in getattr(item, "fixturenames", ()):
        return None
    from pytest_trt.run import shard

    return None if shard.claim(s.claim_dir, item.nodeid) else True


def pytest_runtest_setup(item: pytest.Item) -> None:
    s = item.config.stash[SETTINGS_KEY]
    if item.get_closest_marker("gpu") and not s.device.is_cuda:
        pytest.skip("needs a CUDA GPU (none visible; --trt-device cpu or no NVIDIA driver)")
    if item.get_closest_marker("tensorrt"):
        a = backends.availability("tensorrt")
        if not a.ok:
            pytest.skip(f"needs TensorRT: {a.reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if call.when == "setup":  # pytest's own phase clock: skips raised before any setup hook count too
        item.config.stash[SESSION_KEY].timeline.case_started(item.nodeid, call.start)
    elif call.when == "teardown":
        item.config.stash[SESSION_KEY].timeline.case_finished(item.nodeid, call.stop)
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("trt_case") if callspec else None
    if isinstance(case, matrix.Case) and call.when == "teardown":
        _progress_line(item.config, case)
    if isinstance(case, matrix.Case) and report.skipped and report.when in ("setup", "call"):
        sess = item.config.stash[SESSION_KEY]
        rec = sess.records.get(case.id)
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if rec is None:
            sess.records[case.id] = {
                "id": case.id,
                "nodeid": item.nodeid,
                "status": "skipped",
                "message": reason,
                "extra_info": {**case.params(), "status": "skipped"},
            }
        elif rec["status"] == "pending":
            rec["status"] = rec["extra_info"]["status"] = "skipped"
            rec["message"] = reason
    return report


def _saves_benchmarks(config: pytest.Config) -> bool:
    """Whether pytest-benchmark will describe the machine at the end (it does so to save or compare)."""
    if hasattr(config, "workerinput"):
        return False  # xdist workers never time (pytest-benchmark disables itself there)
    names = ("benchmark_json", "benchmark_save", "benchmark_autosave", "benchmark_compare")
    return any(config.getoption(n, None) for n in names)


def _generic_machine_info() -> dict[str, Any] | None:
    """pytest-benchmark's own machine_info, taken at start-up instead of at the end.

    py-cpuinfo forks helper processes; at the end of a session the process holds a CUDA context and
    gigabytes of mappings, and those forks cost over a second of every run's wall time.  Nothing it
    reports (CPU model, Python, OS) changes during a session.
    """
    try:
        from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info as generate
    except ImportError:
        return None
    try:
        return dict(generate())
    except Exception:  # the end-of-session default then runs (and reports its own error)
        return None


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_benchmark_generate_machine_info(config: pytest.Config) -> dict[str, Any] | None:
    info: dict[str, Any] | None = config.stash.get(BENCH_MACHINE_KEY, None)
    return dict(info) if info is not None else None


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    from pytest_trt.hardware import telemetry

    machine_info["pytest_trt"] = telemetry.machine_info(trt_versions.builder_versions())
    s = config.stash.get(SETTINGS_KEY, None)
    if s is not None:
        machine_info["pytest_trt"]["device"] = s.device.torch


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: list[Any], output_json: dict[str, Any]
) -> None:
    sess = config.stash.get(SESSION_KEY, None)
    drift = sess.sentinel.drift if sess is not None and sess.sentinel is not None else None
    if drift is not None:
        from pytest_trt.plugin.timed import mark_invalid, marks_run

        if marks_run(drift):
            for bj in output_json.get("benchmarks", []):
                mark_invalid(bj.setdefault("extra_info", {}), drift)
    records.add_percentiles(benchmarks, output_json)
    records.sanitize_extra_info(output_json)
    if sess is not None:
        sess.timeline.mark("session_finished")
        output_json["pytest_trt"] = records.session_section(
            sess.records.values(), sess.settings, sess.cache.stats.summary(), sess.timeline.as_dict(), drift
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    sess = config.stash.get(SESSION_KEY, None)
    if sess is None or (hasattr(config, "workerinput") and not sess.records):
        return
    if timing_setup.nothing_measured(sess) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED  # 5: nothing was measured
    s = sess.settings
    if s.json_path is not None:
        from pytest_trt.hardware import telemetry

        sess.timeline.mark("session_finished")
        drift = sess.sentinel.drift if sess.sentinel is not None else None
        payload = records.session_section(
            sess.records.values(), s, sess.cache.stats.summary(), sess.timeline.as_dict(), drift
        )
        payload["machine_info"] = {"pytest_trt": telemetry.machine_info(trt_versions.builder_versions())}
        path = s.json_path
        worker = getattr(config, "workerinput", {}).get("workerid")
        if worker:  # xdist: one file per worker next to the requested one, never a shared partial write
            path = path.with_name(f"{path.stem}.{worker}{path.suffix}")
        sess.saved.save(path, json_bytes(payload), "--trt-json")
    if s.baseline is not None:
        from pytest_trt.gate import compare

        verdicts = compare.gate_session(s.baseline, list(sess.records.values()), config.stash[RULE_KEY])
        config.stash[_GATE_KEY] = verdicts
        if any(v.verdict in compare.FAILING for v in verdicts) and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _progress_line(config: pytest.Config, case: matrix.Case) -> None:
    sess = config.stash[SESSION_KEY]
    if sess.progress is None or hasattr(config, "workerinput"):
        return
    rec = sess.records.get(case.id)
    wall = (rec.get("extra_info") or {}).get("wall_s") if rec is not None else None
    line = sess.progress.case_done(case.id, wall)
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if line and tr is not None:
        writer = getattr(tr, "_tw", None)  # the dots of -q leave the line open; write_line would append
        if writer is not None and int(getattr(writer, "width_of_current_line", 0) or 0) > 0:
            tr.write("\n")
        tr.write_line(line)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    sess = config.stash.get(SESSION_KEY, None)
    if sess is None or not sess.records:
        return
    from pytest_trt.plugin import summary

    tr = terminalreporter
    summary.write(
        tr,
        sess.records.values(),
        f"pytest-trt cache ({sess.cache.root}): {sess.cache.stats.summary()}",
        timing_setup.timing_lines(config),
    )
    summary.session_notes(
        tr,
        progress.slowest(sess.records.values()),
        sess.saved.lines,
        len(sess.records)
        if timing_setup.nothing_measured(sess) and not hasattr(config, "workerinput")
        else 0,
        config.stash.get(_GATE_KEY, None),
        sess.settings.baseline,
    )
