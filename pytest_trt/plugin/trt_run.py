"""``TrtRun``: one configuration's benchmark, in the order that keeps every result: build (or reuse) the
engine, judge its outputs against the strict-fp32 outputs and a same-recipe reference, time it through
pytest-benchmark's ``benchmark`` fixture with telemetry, record everything in ``extra_info``, and only
then assert the quality gates (a quality failure never loses the timing).
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from typing import Any

import numpy as np
import pytest

from pytest_trt.engines import registry as backends
from pytest_trt.engines.protocol import BuildFailed, BuiltNotRunnable, Engine
from pytest_trt.gate.runs import STATUSES
from pytest_trt.measure import timing
from pytest_trt.models import pruning, zoo
from pytest_trt.models.registry import DETECTION_TASKS
from pytest_trt.models.user_data import UserDataError
from pytest_trt.plugin import records
from pytest_trt.plugin.matrix import Case, Request
from pytest_trt.plugin.session import TrtSession, engine_outputs
from pytest_trt.plugin.timed import Sentinel, time_case
from pytest_trt.quality import detection, fp16_range, gates, judge, pruning_loss


class TrtRun:
    """One configuration's benchmark: build, evaluate, measure, record, assert."""

    def __init__(self, case: Case, req: Request, session: TrtSession, request: pytest.FixtureRequest) -> None:
        self.case = case
        self.req = req
        self.session = session
        self.request = request
        self.settings = session.settings
        self.spec = zoo.get(case.model)
        self.record = records.new_record(case, request.node.nodeid, self.spec, self.settings)
        session.records[case.id] = self.record
        self._engine: Engine | None = None
        self.quality: dict[str, Any] | None = None
        self.gate_results: list[gates.GateResult] = []
        self.measurement: timing.Measurement | None = None

    @property
    def benchmark(self) -> Any:
        return self.request.node.funcargs["benchmark"]

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                try:
                    source = self.session.weights(self.case.model)
                    self.record["extra_info"]["weights"] = source
                    self.record["extra_info"]["weights_kind"] = zoo.weights_kind(source)
                # a configuration error, or no pruning tool for a 2:4 variant: recorded like a failed build
                except (zoo.WeightsUnavailable, pruning.SparsityUnavailable) as exc:
                    raise BuildFailed(str(exc)) from exc
                self._engine = self.session.engine(self.case, self.req)
            except BuiltNotRunnable as exc:  # a real build result with nothing to time: never a failure
                self.record["status"] = "built"
                self.record["message"] = str(exc)
                self.record["extra_info"].update(records.engine_section(exc.info, self._onnx_facts()))
                self._publish()
                pytest.skip(f"built, not runnable here: {exc}")
            except BuildFailed as exc:
                self.record["status"] = "oom" if exc.oom else "build_failed"
                self.record["message"] = str(exc)
                self.record["extra_info"]["build_log"] = exc.log[-30:]
                if exc.recipe is not None:
                    self.record["extra_info"]["recipe"] = exc.recipe.as_dict()
                self._publish()
                if self.settings.on_build_failure == "skip":
                    pytest.skip(f"{self.record['status']}: {exc}")
                pytest.fail(f"{self.record['status']}: {exc}", pytrace=False)
            self.record["extra_info"].update(records.engine_section(self._engine.info, self._onnx_facts()))
        return self._engine

    def _onnx_facts(self) -> dict[str, Any] | None:
        if not backends.get(self.case.backend).consumes_onnx:
            return None
        return self.session.onnx(self.case, self.req).facts()

    # -- quality -------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        split = self.record["extra_info"].setdefault("wall_s", {}).setdefault("quality_parts", {})
        t0 = time.perf_counter()
        base = self.session.fp32_outputs(self.case)
        split["baseline"] = round(time.perf_counter() - t0, 4)  # ~0 when an earlier case computed it
        t0 = time.perf_counter()
        out = engine_outputs(self.engine, base.samples, self.case.batch, self.case.profile == "static")
        split["engine_outputs"] = round(time.perf_counter() - t0, 4)
        labels = base.samples.labels if self.spec.task != "regression" else None
        source = self.session.weights(self.case.model)
        trained = zoo.is_trained(source)
        # TF32 only exists on CUDA devices; CPU fp32 is judged as strict fp32.
        gclass = gates.gate_class(self.case.precision, self.settings.tf32 and self.settings.device.is_cuda)
        t0 = time.perf_counter()
        ref = self.session.reference(self.case, self.req, self.engine, gclass)
        split["reference"] = round(time.perf_counter() - t0, 4)
        t0 = time.perf_counter()
        sections: dict[str, Any] = {}
        pruned = self._pruning(base.outputs, labels)
        if pruned:
            sections["sparsity"] = pruned
        task = self.spec.task
        detection_s = 0.0
        if task in DETECTION_TASKS:
            t1 = time.perf_counter()
            sections["detection"] = self._detection(base.outputs, out, base.samples)
            detection_s = time.perf_counter() - t1
            # decoding and mAP; the post-processing timing inside _detection is its own part
            split["detection"] = round(detection_s - split["postprocess_timing"], 4)
            task = "generic"  # the head tensors themselves: the same-recipe rule and closeness
        verdict = judge.judge(
            task,
            base.names,
            base.outputs,
            out,
            ref,
            gate_class=gclass,
            gate_list=gates.gates_for(gclass, self._overrides()),
            labels=labels,
            trained=trained,
            sections=sections or None,
            kinds=self.spec.output_kinds,
            device=self.settings.device.torch,
        )
        split["metrics"] = round(time.perf_counter() - t0 - detection_s, 4)
        q = verdict.quality
        q["data"] = {
            "source": base.samples.source,
            "samples": len(base.samples),
            "labelled": labels is not None,
            "baseline": base.kind,
        }
        q["baseline_noise"] = base.noise
        q["agreement_meaningful"] = trained
        q["gate_class"] = gclass
        if not trained:
            q["note"] = (
                "random weights: absolute gates and top-k agreement are not meaningful; "
                "judged by the same-recipe reference"
            )
        self.gate_results = verdict.results
        self.quality = q
        self.record["extra_info"]["quality"] = q
        return q

    def _detection(self, base: list[np.ndarray], out: list[np.ndarray], samples: Any) -> dict[str, Any]:
        """Decoded detections judged (mAP against labels and against fp32's own detections), and the
        post-processing stage timed on a batch of this case's size (host; device on a GPU)."""
        hw = (int(samples.x.shape[-2]), int(samples.x.shape[-1]))
        nc = int(self.spec.num_classes or 0)
        device = self.settings.device.torch
        key = (self.case.model, self.case.hw, self.session.weights(self.case.model))
        kept = self.session.fp32_detections
        if key not in kept:  # the fp32 model's detections: decoded once per model, resolution, weights
            kept[key] = detection.Fp32Detections(detection.detect_all(base, nc, hw, device=device))
        section = detection.quality(base, out, nc, hw, samples.annotations, device, kept[key])
        t0 = time.perf_counter()
        self.record["extra_info"]["postprocess_ms"] = detection.time_postprocess(
            out, nc, hw, self.case.batch, device
        )
        parts = self.record["extra_info"]["wall_s"]["quality_parts"]
        parts["postprocess_timing"] = round(time.perf_counter() - t0, 4)
        return section

    def _pruning(self, outputs: list[np.ndarray], labels: np.ndarray | None) -> dict[str, Any] | None:
        """For a pruned variant: its 2:4 structure, file sizes and what pruning cost against the dense model
        (``pruning_*`` metrics, gated only by the user's gates)."""
        if self.spec.prune is None or self.spec.parent is None:
            return None
        dense_case = dataclasses.replace(self.case, model=self.spec.parent)
        dense = self.session.fp32_outputs(dense_case)
        section: dict[str, Any] = pruning.structure(self.session.model(self.case.model)[0])
        section.update(pruning_loss.pruning_loss(dense.outputs, outputs, self.spec.task, labels))
        if backends.get(self.case.backend).consumes_onnx:
            section["onnx"] = pruning.file_sizes(self.session.onnx(self.case, self.req).path)
            section["dense_onnx"] = pruning.file_sizes(self.session.onnx(dense_case, self.req).path)
        return section

    def _overrides(self) -> dict[str, list[gates.Gate]]:
        """The backend's rule adjustments, then --trt-gate / ini gates, then the test's trt_quality
        marker (the last two count as the user's)."""
        own = gates.parse_overrides(backends.get(self.case.backend).rule_overrides)
        overrides = {p: [dataclasses.replace(g, user=False) for g in gs] for p, gs in own.items()}
        for prec, gs in self.settings.gates.items():
            overrides[prec] = [*overrides.get(prec, []), *gs]
        marker = self.request.node.get_closest_marker("trt_quality")
        if marker is not None:
            for prec, exprs in marker.kwargs.items():
                try:
                    parsed = gates.parse_overrides(f"{prec}:{e}" for e in _listify(exprs))[prec]
                except gates.GateSyntaxError as exc:
                    raise pytest.UsageError(f"@pytest.mark.trt_quality: {exc}") from None
                overrides[prec] = [*overrides.get(prec, []), *parsed]
        return overrides

    # -- timing --------------------------------------------------------------------------------
    def measure(self) -> timing.Measurement:
        """Time the case (in its engine's isolated worker where the session has one), then record it."""
        sess, eng = self.session, self.engine
        quick = timing.is_quick(self.benchmark)
        timed = time_case(sess, self.case, self.req, eng.device, lambda: eng, quick)
        sess.timed_ids.append(self.case.id)
        timing.record(self.benchmark, timed.measurement, quick)
        self.measurement = timed.measurement
        self.record["extra_info"].update(timed.section)
        self.record["extra_info"]["timing"]["context"] = timed.context
        self.record["extra_info"].setdefault("wall_s", {})["timing_parts"] = timed.stages
        if timed.async_throughput is not None:
            self.record["extra_info"]["throughput"]["async"] = timed.async_throughput
        if sess.sentinel is None and not quick:
            sess.sentinel = Sentinel(self.case, self.req, eng.device, timed.measurement)
        return timed.measurement

    def run(self) -> records.CaseRecord:
        """The standard benchmark body: evaluate quality, measure, record, then assert the gates."""
        t0 = time.perf_counter()
        self.engine  # noqa: B018 - build (or fail/skip) first
        wall_s = self.record["extra_info"].setdefault("wall_s", {})
        wall_s["engine"] = time.perf_counter() - t0  # including export and set-up of the model
        try:
            t0 = time.perf_counter()
            self.evaluate()
            wall_s["quality"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            self.measure()
            wall_s["timing"] = time.perf_counter() - t0
        except UserDataError as exc:  # the user's data does not fit: say what it should be, no traceback
            self.record["status"] = "usage_error"
            self.record["message"] = str(exc)
            self._publish()
            pytest.fail(str(exc), pytrace=False)
        except Exception as exc:
            self.record["status"] = "run_failed"
            self.record["message"] = f"{type(exc).__name__}: {exc}"
            self.record["extra_info"]["traceback"] = traceback.format_exc()[-4000:]
            self._publish()
            raise
        self.record["status"] = "ok" if self.quality and self.quality["passed"] else "quality_failed"
        self._publish()
        self.assert_quality()
        return self.record

    def assert_quality(self) -> None:
        msg = gates.failure_message(self.case.id, self.gate_results)
        if msg:
            pytest.fail(msg + self._sensitivity_hint() + self._fp16_range_hint(), pytrace=False)

    def _fp16_range_hint(self) -> str:
        """For a failing fp16 case of an ONNX graph: the constants and activations (of one evaluation
        sample through the fp32 graph) that fp16 cannot hold, also recorded as ``quality.fp16_range``."""
        if self.case.precision != "fp16" or self.quality is None or self._onnx_facts() is None:
            return ""
        graph = self.session.onnx(self.case, self.req)
        samples = self.session.fp32_outputs(self.case).samples
        n = self.case.batch if self.case.profile == "static" else 1  # a static graph takes its batch
        names = graph.input_names or (graph.input_name,)
        feeds = dict(zip(names, self.spec.to_graph(samples.take(0, n, n)), strict=False))
        try:
            section = fp16_range.scan(graph.path, feeds)
        except Exception as exc:  # a diagnosis must not turn a quality verdict into a crash
            section = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        self.quality["fp16_range"] = section
        self._publish()
        lines = fp16_range.hint(section)
        return "\n" + "\n".join(lines) if lines else ""

    def _sensitivity_hint(self) -> str:
        """For a failing int8 case: the layers that lose the most when quantized alone, and what the
        recipe kept in float (what to try next)."""
        ex = self.record["extra_info"]
        if ex.get("precision") != "int8":
            return ""
        details = (ex.get("recipe") or {}).get("details") or {}
        ranked = (ex.get("engine") or {}).get("int8_sensitivity")
        kept = details.get("excluded") or []
        lines = []
        if ranked:
            worst = ", ".join(f"{r['layer']} ({r['error']:.3g})" for r in ranked[:5])
            lines.append(f"  most sensitive int8 layers (output error when quantized alone): {worst}")
        if kept:
            lines.append(f"  kept in float: {', '.join(kept)} ({details.get('excluded_by', 'named')})")
        if not ranked:
            lines.append("  --trt-int8-exclude auto measures which layers lose the accuracy")
        else:
            lines.append("  keep more in float with --trt-int8-exclude NAME[,NAME...]")
        return "\n" + "\n".join(lines)

    def publish(self, status: str | None = None) -> None:
        """For benchmarks with their own loop (e.g. the video pipeline): set the status, write the record."""
        if status is not None:
            if status not in STATUSES:
                raise ValueError(
                    f"unknown status {status!r}; a record's status is one of {', '.join(STATUSES)}"
                )
            self.record["status"] = status
        self._publish()

    def _publish(self) -> None:
        """Copy the record into pytest-benchmark's extra_info (what --benchmark-json writes)."""
        self.record["extra_info"]["status"] = self.record["status"]
        fixture = self.request.node.funcargs.get("benchmark")
        if fixture is not None:
            fixture.extra_info.update(self.record["extra_info"])


def _listify(v: Any) -> list[str]:
    return [v] if isinstance(v, str) else list(v)
