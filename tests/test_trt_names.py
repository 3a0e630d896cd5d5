"""Every TensorRT name the backend uses exists in the real bindings of each version it claims.

Used unguarded: present in TensorRT 8.6.1, 10.13.0.35 and 11.4.0.106.  Guarded (``hasattr``,
``getattr`` with a default, ``_flag``): present in at least one of them, or in TensorRT-RTX where that
is installed.  The recording double exposes only names its version really has.  See tests/trt_names.py.
"""

from __future__ import annotations

import enum
import inspect
from pathlib import Path

import pytest

from pytest_trt.engines import tensorrt as tensorrt_package
from tests import trt_double, trt_names

# every module of the TensorRT backend, as one source (the analysis follows names, not files)
SOURCE = "\n".join(
    p.read_text().replace("from __future__ import annotations", "")
    for p in sorted(Path(tensorrt_package.__file__).parent.glob("*.py"))
)
FAMILY = {"8.6.1": "8.6.1", "10.13.0": "10.13.0.35", "11.4.0": "11.4.0.106"}


@pytest.fixture(scope="module")
def bindings() -> dict[str, trt_names.Binding]:
    try:
        return trt_names.load_bindings()
    except Exception as exc:  # offline: the wheels cannot be had
        pytest.skip(
            f"TensorRT binding wheels unavailable ({exc}); set PYTEST_TRT_BINDINGS_DIR to a folder holding them"
        )


def problems(source: str, bindings: dict[str, trt_names.Binding]) -> list[str]:
    rtx = trt_names.rtx_binding()
    out = []
    for use in trt_names.used_names(source):
        missing = [v for v, b in bindings.items() if not b.has(use.name)]
        if use.guarded:
            if len(missing) == len(bindings) and not (rtx and rtx.has(use.name)):
                out.append(f"{use}: in no TensorRT version (nor TensorRT-RTX)")
        elif missing:
            out.append(f"{use}: used unguarded but absent from TensorRT {', '.join(missing)}")
    return out


def test_every_name_the_backend_uses_is_real(bindings: dict[str, trt_names.Binding]) -> None:
    uses = trt_names.used_names(SOURCE)
    assert len(uses) > 60  # the analysis sees the builder, config, network, engine and context calls
    assert {u.owner for u in uses} >= {
        "trt",
        "builder",
        "config",
        "network",
        "parser",
        "engine",
        "self.context",
    }
    assert problems(SOURCE, bindings) == []


def test_a_bogus_flag_is_caught(bindings: dict[str, trt_names.Binding]) -> None:
    bad = SOURCE.replace(
        "config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)", "config.set_flag(trt.BuilderFlag.FP17)"
    )
    assert bad != SOURCE
    assert any(
        "trt.BuilderFlag.FP17" in p and "8.6.1, 10.13.0.35, 11.4.0.106" in p for p in problems(bad, bindings)
    )


def test_a_call_removed_in_10_is_caught_unless_guarded(bindings: dict[str, trt_names.Binding]) -> None:
    """``build_engine`` and ``max_workspace_size`` went in 10.0; ``EXPLICIT_BATCH`` in 11."""
    call = "plan = builder.build_serialized_network(network, config)"
    assert call in SOURCE
    bad = SOURCE.replace(
        call, "config.max_workspace_size = 1 << 30\n    plan = builder.build_engine(network, config)"
    )
    found = problems(bad, bindings)
    assert any("builder.build_engine" in p and "10.13.0.35, 11.4.0.106" in p for p in found), found
    assert any("config.max_workspace_size" in p for p in found), found
    explicit = 'explicit = getattr(ndcf, "EXPLICIT_BATCH", None)'
    assert explicit in SOURCE
    unguarded = SOURCE.replace(explicit, "explicit = ndcf.EXPLICIT_BATCH")
    assert any("EXPLICIT_BATCH" in p and "11.4.0.106" in p for p in problems(unguarded, bindings))


def test_presence_needs_the_whole_name(bindings: dict[str, trt_names.Binding]) -> None:
    b11 = bindings["11.4.0.106"]
    assert b11.has("STRONGLY_TYPED") and b11.has("execute_async_v3") and b11.has("device_memory_size_v2")
    assert not b11.has("IInt8EntropyCalibrator2") and not b11.has("EXPLICIT_BATCH")  # removed in 11
    assert bindings["10.13.0.35"].has("IInt8EntropyCalibrator2") and not bindings["8.6.1"].has(
        "IProgressMonitor"
    )


def _double_names(version: str) -> set[str]:
    """Every TensorRT name the double exposes for ``version``: module attributes, enum members, methods."""
    m = trt_double.make_double(version)
    names: set[str] = set()
    for attr, value in vars(m).items():
        if attr.startswith("_") or attr in ("recorder", "FakeEngine"):  # test plumbing, not TensorRT
            continue
        names.add(attr)
        if isinstance(value, type) and issubclass(value, enum.Enum):
            names.update(value.__members__)
        elif inspect.isclass(value):
            names.update(n for n in vars(value) if not n.startswith("_") and n not in ("Severity",))
    for cls in (m.Builder(m.Logger()).create_builder_config().__class__, m.FakeEngine):  # type: ignore[attr-defined]
        names.update(n for n in vars(cls) if not n.startswith("_"))
    return names - {"flags", "logger", "records", "level", "lock", "WARNING"}  # Python-side, not bindings


@pytest.mark.parametrize("version", sorted(FAMILY))
def test_the_double_exposes_only_real_names(bindings: dict[str, trt_names.Binding], version: str) -> None:
    real = bindings[FAMILY[version]]
    fake = sorted(n for n in _double_names(version) if not real.has(n))
    assert fake == [], f"the double offers names TensorRT {FAMILY[version]} does not have: {fake}"
