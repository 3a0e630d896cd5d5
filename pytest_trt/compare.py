"""Regression gate and side-by-side comparison of pytest-benchmark JSON runs.

The latency rule is built to raise few false alarms on a noisy GPU CI (a bare 5% threshold raises one
in ~45% of runs of a 50-benchmark suite): a result regresses only if

1. the ratio of the candidate's to the baseline's median of per-run medians exceeds ``1 + threshold``,
2. the absolute difference exceeds a floor (default 20 us), and
3. when each side has at least ``min_runs_for_test`` runs, a one-sided Mann-Whitney U test on the
   per-run medians is significant at ``alpha`` (rounds inside one process share its offset, so
   testing rounds would be over-confident).

Quality is gated separately (closeness, agreement, accuracy may not drop by more than a tolerance).
Differences of GPU, driver, CUDA, TensorRT or recipe are reported and, unless ``--across-env``, make
a latency change "incomparable" rather than a regression.
"""

from __future__ import annotations

import glob
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pytest_trt.results import ResultsError, load_run

VERDICTS = ("regressed", "failed-now", "improved", "unchanged", "new", "missing", "invalid", "incomparable")
FAILING = ("regressed", "failed-now")
ENV_KEYS = ("gpu", "driver", "cuda_driver", "torch_cuda_runtime", "trt_version", "onnxruntime", "torch")
FAILED_STATUSES = ("build_failed", "oom", "run_failed", "quality_failed")
QUALITY_METRICS = (
    "closeness@0.01",
    "closeness@0.1",
    "closeness@1",
    "top1_agreement",
    "accuracy_top1",
    "seg_closeness",
)


@dataclass(frozen=True)
class Rule:
    threshold: float = 0.05
    floor_s: float = 20e-6
    alpha: float = 0.01
    min_runs_for_test: int = 3
    closeness_tol_pp: float = 1.0  # percentage points
    ratio_tol: float = 0.01  # agreement / accuracy, absolute
    across_env: bool = False
    metric: str = "median"  # median | mean | p99 | min
    include_invalid: bool = False  # judge results whose runs are all marked invalid (unstable, few samples)


@dataclass
class RunResult:
    key: str
    file: str
    status: str
    median_s: float | None
    p99_s: float | None
    mean_s: float | None
    min_s: float | None
    throughput: float | None
    valid: bool | None
    quality: dict[str, float]
    recipe: str | None
    env: dict[str, Any]
    extra: dict[str, Any]

    def stat(self, name: str) -> float | None:
        return {"median": self.median_s, "p99": self.p99_s, "mean": self.mean_s, "min": self.min_s}[name]


@dataclass
class Verdict:
    key: str
    verdict: str
    reason: str
    base_runs: int = 0
    cand_runs: int = 0
    base_median_ms: float | None = None
    cand_median_ms: float | None = None
    ratio: float | None = None
    p_value: float | None = None
    base_p99_ms: float | None = None
    cand_p99_ms: float | None = None
    base_throughput: float | None = None
    cand_throughput: float | None = None
    quality_deltas: dict[str, float] = field(default_factory=dict)
    env_diff: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- statistics ---------------------------------------------------------------------------------


def mann_whitney_greater(x: Sequence[float], y: Sequence[float]) -> float:
    """One-sided p-value that ``y`` tends to be larger than ``x`` (exact for small samples).

    Exact: enumerate U's null distribution by dynamic programming over rank placements (ties get
    half credit in U, then the exact distribution of the untied case is used: conservative enough
    for timing data, where exact ties are rare).  Normal approximation with tie correction otherwise.
    """
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        return 1.0
    u = sum(1.0 if yj > xi else 0.5 if yj == xi else 0.0 for xi in x for yj in y)
    if n * m <= 2500:
        # counts[k] = number of arrangements with U == k, built up one element at a time.
        dist = _u_distribution(n, m)
        total = sum(dist)
        k = math.ceil(u - 1e-9)
        return sum(dist[k:]) / total
    allv = sorted(list(x) + list(y))
    ties: dict[float, int] = defaultdict(int)
    for v in allv:
        ties[v] += 1
    N = n + m
    tie_term = sum(t**3 - t for t in ties.values()) / (N * (N - 1))
    sd = math.sqrt(n * m / 12.0 * ((N + 1) - tie_term))
    if sd == 0:
        return 1.0
    z = (u - n * m / 2.0 - 0.5) / sd
    return 0.5 * math.erfc(z / math.sqrt(2))


_U_CACHE: dict[tuple[int, int], list[int]] = {}


def _u_distribution(n: int, m: int) -> list[int]:
    if (n, m) in _U_CACHE:
        return _U_CACHE[(n, m)]
    # f[i][j] = distribution of U for sizes i, j (classic recurrence f(i,j,u)=f(i-1,j,u-j)+f(i,j-1,u)).
    f: dict[tuple[int, int], list[int]] = {}
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0 or j == 0:
                f[(i, j)] = [1]
                continue
            a = f[(i - 1, j)]
            b = f[(i, j - 1)]
            size = i * j + 1
            d = [0] * size
            for k, c in enumerate(b):
                d[k] += c
            for k, c in enumerate(a):
                d[k + j] += c
            f[(i, j)] = d
    _U_CACHE[(n, m)] = f[(n, m)]
    return f[(n, m)]


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    k = len(s)
    return (s[k // 2] if k % 2 else 0.5 * (s[k // 2 - 1] + s[k // 2])) if k else math.nan


# -- loading ------------------------------------------------------------------------------------


def expand_paths(patterns: Iterable[str]) -> list[Path]:
    out: list[Path] = []
    for p in patterns:
        matches = sorted(glob.glob(p)) if any(ch in p for ch in "*?[") else [p]
        if not matches:
            raise ResultsError(f"{p}: no files match this pattern")
        out.extend(Path(m) for m in matches)
    return out


def _quality_numbers(extra: Mapping[str, Any]) -> dict[str, float]:
    from pytest_trt.gates import lookup

    q = extra.get("quality") or {}
    out = {}
    for name in QUALITY_METRICS:
        v = lookup(q, name)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            out[name] = float(v)
    return out


def _env(machine_info: Mapping[str, Any]) -> dict[str, Any]:
    mi = machine_info.get("pytest_trt") or {}
    return {k: mi.get(k) for k in ENV_KEYS}


def results_from_run(data: Mapping[str, Any]) -> list[RunResult]:
    """Per-result summaries of one file; failed cases come from the ``pytest_trt`` section."""
    env = _env(data.get("machine_info", {}))
    path = str(data.get("_path", "?"))
    out: dict[str, RunResult] = {}
    for b in data["benchmarks"]:
        st = b.get("stats") or {}
        ex = b.get("extra_info") or {}
        lat = (ex.get("latency_ms") or {}).get("model") or {}
        key = b.get("fullname") or b.get("name")
        if not key:
            raise ResultsError(f"{path}: a benchmark entry has no fullname/name")
        p99 = (
            st.get("p99")
            if st.get("p99") is not None
            else (lat["p99"] / 1e3 if lat.get("p99") is not None else None)
        )
        out[key] = RunResult(
            key=key,
            file=path,
            status=ex.get("status", "ok"),
            median_s=st.get("median"),
            p99_s=p99,
            mean_s=st.get("mean"),
            min_s=st.get("min"),
            throughput=ex.get("throughput_samples_per_s"),
            valid=ex.get("valid"),
            quality=_quality_numbers(ex),
            recipe=(ex.get("recipe") or {}).get("name"),
            env=env,
            extra=ex,
        )
    for case in (data.get("pytest_trt") or {}).get("cases", []):
        key = case.get("nodeid")
        if key and key not in out and case.get("status") != "skipped":
            ex = case.get("extra_info") or {}
            out[key] = RunResult(
                key,
                path,
                case.get("status", "unknown"),
                None,
                None,
                None,
                None,
                None,
                None,
                _quality_numbers(ex),
                (ex.get("recipe") or {}).get("name"),
                env,
                ex,
            )
    return list(out.values())


def load_side(paths: Sequence[Path]) -> dict[str, list[RunResult]]:
    side: dict[str, list[RunResult]] = defaultdict(list)
    for p in paths:
        for r in results_from_run(load_run(p)):
            side[r.key].append(r)
    return dict(side)


# -- the rule -----------------------------------------------------------------------------------


def judge(key: str, base: Sequence[RunResult], cand: Sequence[RunResult], rule: Rule) -> Verdict:
    if not base:
        return Verdict(key, "new", "only in the candidate", cand_runs=len(cand))
    if not cand:
        return Verdict(key, "missing", "only in the baseline", base_runs=len(base))
    ok_base = [r for r in base if r.status not in FAILED_STATUSES]
    failed_cand = [r for r in cand if r.status in FAILED_STATUSES and r.status != "quality_failed"]
    v = Verdict(key, "unchanged", "", len(base), len(cand))
    if failed_cand and ok_base:
        v.verdict, v.reason = "failed-now", f"candidate status {failed_cand[0].status} (baseline ran)"
        return v
    # quality, gated separately from speed
    qdrops = []
    for name in QUALITY_METRICS:
        bq = [r.quality[name] for r in base if name in r.quality]
        cq = [r.quality[name] for r in cand if name in r.quality]
        if not bq or not cq:
            continue
        delta = min(cq) - _median(bq)
        v.quality_deltas[name] = delta
        tol = (
            rule.closeness_tol_pp
            if name.endswith("closeness") or name.startswith("closeness")
            else rule.ratio_tol
        )
        if delta < -tol:
            qdrops.append(f"{name} {_median(bq):.4g} -> {min(cq):.4g} (tolerance {tol:g})")
    env_diff = {
        k: (base[0].env.get(k), cand[0].env.get(k))
        for k in ENV_KEYS
        if base[0].env.get(k) != cand[0].env.get(k)
    }
    if base[0].recipe != cand[0].recipe:
        env_diff["recipe"] = (base[0].recipe, cand[0].recipe)
    v.env_diff = env_diff
    if qdrops:
        v.verdict, v.reason = "regressed", "quality dropped: " + "; ".join(qdrops)
        return v
    bm = [s for r in base if (s := r.stat(rule.metric)) is not None]
    cm = [s for r in cand if (s := r.stat(rule.metric)) is not None]
    if not bm or not cm:
        v.verdict, v.reason = "unchanged", "no timing on one side (e.g. --benchmark-disable)"
        return v
    b_med, c_med = _median(bm), _median(cm)
    v.base_median_ms, v.cand_median_ms = b_med * 1e3, c_med * 1e3
    v.ratio = c_med / b_med if b_med > 0 else math.inf
    bp = [r.p99_s for r in base if r.p99_s is not None]
    cp = [r.p99_s for r in cand if r.p99_s is not None]
    v.base_p99_ms = _median(bp) * 1e3 if bp else None
    v.cand_p99_ms = _median(cp) * 1e3 if cp else None
    bt = [r.throughput for r in base if r.throughput]
    ct = [r.throughput for r in cand if r.throughput]
    v.base_throughput = _median(bt) if bt else None
    v.cand_throughput = _median(ct) if ct else None
    all_invalid = all(r.valid is False for r in cand)
    if all_invalid and not rule.include_invalid:
        v.verdict, v.reason = "invalid", "every candidate run is marked invalid (unstable or too few samples)"
        return v
    # Like asv: use the test only where the sample sizes can reach significance at all (3+3 runs cannot
    # get below p = 1/20); otherwise the ratio and the floor decide.
    tested = (
        len(bm) >= rule.min_runs_for_test
        and len(cm) >= rule.min_runs_for_test
        and 1 / math.comb(len(bm) + len(cm), len(bm)) < rule.alpha
    )
    slower = v.ratio > 1 + rule.threshold and (c_med - b_med) > rule.floor_s
    faster = v.ratio < 1 / (1 + rule.threshold) and (b_med - c_med) > rule.floor_s
    if slower or faster:
        v.p_value = mann_whitney_greater(bm, cm) if slower else mann_whitney_greater(cm, bm)
        significant = (v.p_value < rule.alpha) if tested else True
        if significant:
            if env_diff and not rule.across_env:
                v.verdict = "incomparable"
                v.reason = (
                    f"{'slower' if slower else 'faster'} by {abs(v.ratio - 1) * 100:.1f}% but the "
                    f"environment differs ({', '.join(env_diff)}); pass --across-env to judge"
                )
                return v
            v.verdict = "regressed" if slower else "improved"
            v.reason = f"{rule.metric} {v.base_median_ms:.4g} -> {v.cand_median_ms:.4g} ms ({(v.ratio - 1) * 100:+.1f}%)"
            if tested:
                v.reason += f", Mann-Whitney p={v.p_value:.3g} over {len(bm)}+{len(cm)} runs"
            if all_invalid:
                v.reason += " (the candidate's timing is marked invalid: see its validity reasons)"
            return v
        v.reason = f"{(v.ratio - 1) * 100:+.1f}% not significant (p={v.p_value:.3g} >= {rule.alpha})"
        return v
    v.reason = f"{(v.ratio - 1) * 100:+.1f}%"
    return v


def compare_sides(
    base: Mapping[str, list[RunResult]], cand: Mapping[str, list[RunResult]], rule: Rule
) -> list[Verdict]:
    keys = sorted(set(base) | set(cand))
    return [judge(k, base.get(k, []), cand.get(k, []), rule) for k in keys]


def gate_session(
    baseline: Path, records: Sequence[Mapping[str, Any]], rule: Rule | None = None
) -> list[Verdict]:
    """The in-session gate (``--trt-baseline``): this run's records against a stored baseline file."""
    # The user asked to gate this very run: judge it even when its own validity checks complain.
    rule = rule or Rule(include_invalid=True)
    base = load_side([baseline])
    cand: dict[str, list[RunResult]] = {}
    for rec in records:
        ex = rec.get("extra_info") or {}
        if rec.get("status") == "skipped":
            continue
        lat = (ex.get("latency_ms") or {}).get("model") or {}

        def s(k: str, lat: Mapping[str, Any] = lat) -> float | None:
            return lat[k] / 1e3 if lat.get(k) is not None else None

        cand[rec["nodeid"]] = [
            RunResult(
                rec["nodeid"],
                "this session",
                rec.get("status", "ok"),
                s("median"),
                s("p99"),
                s("mean"),
                s("min"),
                ex.get("throughput_samples_per_s"),
                ex.get("valid"),
                _quality_numbers(ex),
                (ex.get("recipe") or {}).get("name"),
                next(iter(base.values()))[0].env if base else {},
                ex,
            )
        ]
    return [v for v in compare_sides(base, cand, rule) if v.verdict != "missing"]


# -- side by side (--by) ------------------------------------------------------------------------


def _dig(d: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def group_value(data: Mapping[str, Any], bench: Mapping[str, Any], key: str) -> str:
    mi = data.get("machine_info", {})
    for src in (mi.get("pytest_trt") or {}, mi, bench.get("extra_info") or {}):
        v = _dig(src, key)
        if v is not None:
            return str(v)
    return "?"


def side_by_side(paths: Sequence[Path], by: str, metric: str = "median") -> dict[str, Any]:
    """One column per value of ``by`` (e.g. trt_version), one row per test id, cells = metric ms."""
    cols: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    recipes: dict[str, set[str]] = defaultdict(set)
    thr: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for p in paths:
        data = load_run(p)
        for b in data["benchmarks"]:
            col = group_value(data, b, by)
            st = b.get("stats") or {}
            val = st.get(metric)
            if val is None:
                continue
            key = b.get("fullname") or b["name"]
            cols[col][key].append(float(val) * 1e3)
            ex = b.get("extra_info") or {}
            if ex.get("throughput_samples_per_s"):
                thr[col][key].append(float(ex["throughput_samples_per_s"]))
            if (ex.get("recipe") or {}).get("name"):
                recipes[col].add(ex["recipe"]["name"])
    columns = sorted(cols)
    rows = sorted({k for c in cols.values() for k in c})
    table = {r: {c: (_median(cols[c][r]) if cols[c].get(r) else None) for c in columns} for r in rows}
    return {
        "by": by,
        "metric": metric,
        "columns": columns,
        "recipes": {c: sorted(recipes[c]) for c in columns},
        "rows": table,
        "throughput": {
            r: {c: (_median(thr[c][r]) if thr[c].get(r) else None) for c in columns} for r in rows
        },
    }


# -- rendering ----------------------------------------------------------------------------------


def _f(x: float | None, spec: str = ".4g") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def render_text(verdicts: Sequence[Verdict], env_notes: Sequence[str]) -> str:
    lines = []
    if env_notes:
        lines.append("environment differences:")
        lines += [f"  {n}" for n in env_notes]
    lines.append(
        f"{'verdict':12} {'base ms':>9} {'cand ms':>9} {'ratio':>7} {'p99 b/c ms':>17} {'samples/s b/c':>19}  result"
    )
    for v in verdicts:
        lines.append(
            f"{v.verdict:12} {_f(v.base_median_ms):>9} {_f(v.cand_median_ms):>9} {_f(v.ratio, '.3f'):>7} "
            f"{_f(v.base_p99_ms) + '/' + _f(v.cand_p99_ms):>17} {_f(v.base_throughput, '.1f') + '/' + _f(v.cand_throughput, '.1f'):>19}  "
            f"{v.key}" + (f"  [{v.reason}]" if v.reason and v.verdict != "unchanged" else "")
        )
        for name, d in v.quality_deltas.items():
            if abs(d) > 0:
                lines.append(f"{'':12} quality {name}: {d:+.4g}")
    counts = {k: sum(1 for v in verdicts if v.verdict == k) for k in VERDICTS}
    lines.append("summary: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n))
    return "\n".join(lines)


def render_markdown(verdicts: Sequence[Verdict], env_notes: Sequence[str]) -> str:
    out = ["# pytest-trt comparison", ""]
    if env_notes:
        out += ["**Environment differences:**", ""] + [f"- {n}" for n in env_notes] + [""]
    out += [
        "| verdict | result | base ms | cand ms | ratio | p99 base/cand ms | samples/s base/cand | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        out.append(
            f"| {v.verdict} | `{v.key}` | {_f(v.base_median_ms)} | {_f(v.cand_median_ms)} | "
            f"{_f(v.ratio, '.3f')} | {_f(v.base_p99_ms)}/{_f(v.cand_p99_ms)} | "
            f"{_f(v.base_throughput, '.1f')}/{_f(v.cand_throughput, '.1f')} | {v.reason} |"
        )
    return "\n".join(out) + "\n"


def render_side_by_side(sbs: Mapping[str, Any], markdown: bool = False) -> str:
    cols = sbs["columns"]
    head = [f"{c} ({', '.join(sbs['recipes'].get(c, [])) or 'recipe ?'})" for c in cols]
    if markdown:
        lines = [f"| result | {' | '.join(head)} |", "|---|" + "---|" * len(cols)]
        for r, cells in sbs["rows"].items():
            lines.append(f"| `{r}` | " + " | ".join(_f(cells[c]) for c in cols) + " |")
        return "\n".join(lines) + "\n"
    lines = [f"{sbs['metric']} latency (ms) by {sbs['by']}:", "  columns: " + "; ".join(head)]
    width = max([len(r) for r in sbs["rows"]] + [10])
    lines.append(f"{'result':{width}} " + " ".join(f"{c[:14]:>14}" for c in cols))
    for r, cells in sbs["rows"].items():
        lines.append(f"{r:{width}} " + " ".join(f"{_f(cells[c]):>14}" for c in cols))
    return "\n".join(lines)


def env_notes(base: Mapping[str, list[RunResult]], cand: Mapping[str, list[RunResult]]) -> list[str]:
    be = next((rs[0].env for rs in base.values() if rs), {})
    ce = next((rs[0].env for rs in cand.values() if rs), {})
    return [f"{k}: {be.get(k)} -> {ce.get(k)}" for k in ENV_KEYS if be.get(k) != ce.get(k)]


def simulate_false_alarms(
    n_suites: int = 400,
    n_bench: int = 50,
    runs: int = 5,
    slowdown: float = 0.0,
    seed: int = 0,
    rule: Rule | None = None,
    base_ms: float = 2.0,
    run_sd: float = 0.015,
    round_sd: float = 0.02,
    rounds: int = 100,
    outlier_rate: float = 0.02,
) -> tuple[float, float]:
    """(share of suites with at least one alarm, share of benchmarks flagged) under a noise model:
    per-round lognormal noise, 2% outliers, and a per-process (run-to-run) offset."""
    import numpy as np

    rule = rule or Rule()
    rng = np.random.default_rng(seed)
    suites_with_alarm = 0
    flagged = 0
    for _ in range(n_suites):
        alarm = False
        for _b in range(n_bench):
            sides = []
            for factor in (1.0, 1.0 + slowdown):
                meds = []
                for _r in range(runs):
                    offset = rng.normal(0, run_sd)
                    x = base_ms * factor * np.exp(offset + rng.normal(0, round_sd, rounds))
                    out = rng.random(rounds) < outlier_rate
                    x[out] *= 1 + rng.exponential(0.5, int(out.sum()))
                    meds.append(float(np.median(x)) / 1e3)
                sides.append(meds)
            if _decide(sides[0], sides[1], rule):
                alarm = True
                flagged += 1
        suites_with_alarm += alarm
    return suites_with_alarm / n_suites, flagged / (n_suites * n_bench)


def _decide(b: Sequence[float], c: Sequence[float], rule: Rule) -> bool:
    def mk(xs: Sequence[float]) -> list[RunResult]:
        return [RunResult("sim", "sim", "ok", x, None, None, None, None, True, {}, "r", {}, {}) for x in xs]

    return judge("sim", mk(b), mk(c), rule).verdict == "regressed"


__all__ = [
    "FAILING",
    "Rule",
    "Verdict",
    "compare_sides",
    "gate_session",
    "judge",
    "mann_whitney_greater",
    "side_by_side",
    "simulate_false_alarms",
]
