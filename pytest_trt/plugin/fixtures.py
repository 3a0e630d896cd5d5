"""The fixtures a benchmark asks for.

``trt_session`` (session scope, :mod:`pytest_trt.plugin.session`) owns the cache, the loaded models,
exported ONNX files, strict-fp32 outputs, references and the engine in use.  ``trt_run`` (per test) is a
:class:`~pytest_trt.plugin.trt_run.TrtRun`: what a benchmark calls to build, judge, time and record.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from pytest_trt.cache import ArtifactCache
from pytest_trt.engines.protocol import Engine
from pytest_trt.models.export import OnnxModel
from pytest_trt.plugin.matrix import Case, InvalidModel, Request
from pytest_trt.plugin.session import Fp32Outputs, TrtSession
from pytest_trt.plugin.settings import Settings
from pytest_trt.plugin.trt_run import TrtRun

SETTINGS_KEY = pytest.StashKey[Settings]()
SESSION_KEY = pytest.StashKey[TrtSession]()


@pytest.fixture(scope="session")
def trt_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved ``--trt-*`` options of this session."""
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def trt_session(pytestconfig: pytest.Config) -> Iterator[TrtSession]:
    sess = pytestconfig.stash[SESSION_KEY]
    yield sess
    sess.release_engine()


@pytest.fixture
def trt_case(request: pytest.FixtureRequest) -> Case:
    """The configuration under test (parametrized by the plugin from options and trt_matrix)."""
    case = getattr(request, "param", None)
    if isinstance(case, InvalidModel):  # a user's declaration that cannot be used: its one error
        sess = request.config.stash[SESSION_KEY]
        sess.records[case.id] = {
            "id": case.id,
            "nodeid": request.node.nodeid,
            "status": "invalid_model",
            "message": case.message,
            "extra_info": {"model": case.model, "status": "invalid_model"},
        }
        pytest.fail(case.message, pytrace=False)
    if not isinstance(case, Case):
        raise pytest.UsageError(
            "trt_case is parametrized by pytest-trt; do not request it outside a benchmark"
        )
    return case


@pytest.fixture
def trt_run(
    trt_case: Case, trt_session: TrtSession, request: pytest.FixtureRequest, benchmark: Any
) -> Iterator[TrtRun]:
    """Build, evaluate and time the configuration ``trt_case`` (``benchmark`` records the timing)."""
    req = Request.from_marker(request.node.get_closest_marker("trt_matrix"))
    run = TrtRun(trt_case, req, trt_session, request)
    if trt_session.settings.device.is_cuda:
        torch.cuda.synchronize(trt_session.settings.device.torch)  # nothing queued may leak in
    yield run
    if trt_session.settings.device.is_cuda:
        torch.cuda.synchronize(trt_session.settings.device.torch)  # nor leak into the next test


@pytest.fixture
def trt_engine(trt_run: TrtRun) -> Engine:
    """The built engine of the current configuration (built once, reused while the group lasts)."""
    return trt_run.engine


@pytest.fixture
def trt_baseline(trt_run: TrtRun) -> Fp32Outputs:
    return trt_run.session.fp32_outputs(trt_run.case)


@pytest.fixture
def trt_onnx(trt_run: TrtRun) -> OnnxModel:
    return trt_run.session.onnx(trt_run.case, trt_run.req)


@pytest.fixture(scope="session")
def trt_cache(trt_session: TrtSession) -> ArtifactCache:
    return trt_session.cache
