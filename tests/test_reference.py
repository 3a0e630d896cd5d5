"""Same-recipe references: which one each precision gets, and the session's bounded cache of them."""

from __future__ import annotations

import types
from collections import OrderedDict

import numpy as np
import pytest
import torch

from pytest_trt.engines.protocol import Device
from pytest_trt.engines.recipes import Recipe
from pytest_trt.models import datasets, networks
from pytest_trt.plugin import session
from pytest_trt.plugin.matrix import Case, Request


def _session() -> session.TrtSession:
    """A TrtSession with just what ``reference`` reads: a CPU device, a model, a baseline."""
    torch.manual_seed(0)
    module = networks.TinyCNN(3, 10).eval()
    samples = datasets.synthetic((3, 32, 32), 6, 0)
    with torch.no_grad():
        base = [module(torch.from_numpy(samples.x)).numpy()]
    s = object.__new__(session.TrtSession)
    s.settings = types.SimpleNamespace(device=Device("cpu"), calib_method="entropy", recipe_tool="ort")
    s._references = OrderedDict()
    s.model = lambda name: (module, "random(seed=0)")  # type: ignore[method-assign]
    s.fp32_outputs = lambda case: session.Fp32Outputs(samples, base, 0.0, {}, ["output"])  # type: ignore[method-assign]
    return s


def _engine(precision: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(info=types.SimpleNamespace(recipe=Recipe(precision, f"x-{precision}")))


def test_each_precision_gets_its_own_recipe_and_tf32_needs_cuda() -> None:
    s = _session()
    case = Case("tinycnn", "onnxruntime", "fp16", "dynamic", 4, 3, None)
    fp16 = s.reference(case, Request(), _engine("fp16"), "fp16")  # type: ignore[arg-type]
    fp32 = s.reference(case, Request(), _engine("fp32"), "fp32")  # type: ignore[arg-type]
    tf32 = s.reference(case, Request(), _engine("fp32"), "tf32")  # type: ignore[arg-type]
    assert fp16.kind == "PyTorch fp16 on cpu" and fp16.outputs is not None
    base = s.fp32_outputs(case).outputs
    err = np.linalg.norm(fp16.outputs[0] - base[0]) / np.linalg.norm(base[0])
    assert 0 < err < 1e-2  # really computed in fp16: close to fp32, not equal to it
    assert fp32.outputs is base
    assert tf32.outputs is None and tf32.reason == "TF32 exists only on CUDA devices"


def test_the_reference_cache_is_bounded_by_size(monkeypatch: pytest.MonkeyPatch) -> None:
    s = _session()
    one = s.reference(
        Case("tinycnn", "onnxruntime", "fp16", "dynamic", 4, 3, None), Request(), _engine("fp16"), "fp16"
    )  # type: ignore[arg-type]
    assert one.outputs is not None
    monkeypatch.setattr(session, "REFERENCE_CACHE_BYTES", int(one.outputs[0].nbytes * 1.5))
    s.reference(
        Case("tinycnn", "onnxruntime", "bf16", "dynamic", 4, 3, None), Request(), _engine("bf16"), "bf16"
    )  # type: ignore[arg-type]
    kept = [k[2] for k in s._references]
    assert kept == ["bf16"]  # the least recently used (fp16) went; the newest always stays
