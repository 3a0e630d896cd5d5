"""Contract tests against real TensorRT: build and run a tiny engine per recipe and check closeness.

They skip (with the reason) wherever `import tensorrt` fails -- every machine of this project's own CI.
Run them on a GPU CI runner that has TensorRT: ``pytest tests/gpu``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

trt = pytest.importorskip("tensorrt", exc_type=ImportError, reason="TensorRT is not installed here")
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

from pytest_trt.cache import ArtifactCache  # noqa: E402
from pytest_trt.engines.protocol import BuildContext, BuildSpec, Device  # noqa: E402
from pytest_trt.engines.registry import get  # noqa: E402
from pytest_trt.models import zoo  # noqa: E402
from pytest_trt.models.datasets import synthetic  # noqa: E402
from pytest_trt.models.export import ExportSettings, export_onnx  # noqa: E402
from pytest_trt.quality import metrics  # noqa: E402


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("profile", ["static", "dynamic"])
def test_tiny_engine_per_recipe(tmp_path: Path, precision: str, profile: str) -> None:
    if not hasattr(trt, "Builder"):
        pytest.skip("`import tensorrt` found a namespace without Builder (stubs?)")
    cache = ArtifactCache(tmp_path)
    spec = zoo.get("tinycnn")
    model, src = zoo.load_model(spec, "random", 0)
    es = ExportSettings(dynamic_batch=profile == "dynamic", static_batch=4)
    onnx_model = export_onnx(cache, spec, model, src, es)
    bspec = BuildSpec(precision=precision, profile=profile, batch=4, batch_range=(1, 4, 8))
    dev = Device("cuda", 0, torch.cuda.get_device_name())
    ctx = BuildContext(
        cache, bspec, spec, onnx_model, dev, lambda: model, lambda: synthetic((3, 32, 32), 32, 7)
    )
    eng = get("tensorrt").build(ctx)
    x = synthetic((3, 32, 32), 4, 0).x
    out = eng.run(x)[0]
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    f = {"fp32": 0.01, "fp16": 0.1, "int8": 1.0}[precision]
    assert metrics.closeness(ref, out, [f])[f"{f:g}"] >= 95.0
    assert eng.info.plan_bytes and eng.info.layers and eng.info.recipe.precision == precision
    again = get("tensorrt").build(ctx)  # second build: from the cache
    assert again.info.cached
    np.testing.assert_allclose(again.run(x)[0], out, rtol=0, atol=0)
