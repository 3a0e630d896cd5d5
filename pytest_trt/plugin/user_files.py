"""The user's own files on the command line: ``--trt-onnx`` models registered (with the suite that runs
them), and ``--trt-inputs`` / ``--trt-calib-inputs`` checked against every selected model before
anything runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_trt.plugin.matrix import Case
from pytest_trt.plugin.settings import Settings

if TYPE_CHECKING:
    from pytest_trt.plugin.session import TrtSession


def add_onnx_files(config: pytest.Config, settings: Settings) -> None:
    """``--trt-onnx``: register each file as a model and collect the suite that runs them (alone when
    no test path was given, as ``trtexec --onnx`` needs no test file)."""
    from pathlib import Path

    from pytest_trt.models import user_data, user_models
    from pytest_trt.models.onnx_shapes import Shapes
    from pytest_trt.plugin import user_suite

    try:
        user_models.register_onnx_files(
            settings.onnx_files,
            Shapes(
                settings.shapes,
                settings.min_shapes,
                settings.max_shapes,
                settings.batch_axis,
                settings.input_values,
                user_data.array_names(settings.inputs_npz),
            ),
            settings.onnx_task,
            settings.onnx_trained,
        )
    except user_models.ModelDeclarationError as exc:
        raise pytest.UsageError(str(exc)) from None
    suite = str(Path(user_suite.__file__))
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [suite]
    elif suite not in config.args:
        config.args.append(suite)


def check_user_data(sess: TrtSession, cases: list[Case]) -> None:
    """Every selected model's ``--trt-inputs`` / ``--trt-calib-inputs`` loaded once before anything
    runs: data that does not fit is a usage error naming the model."""
    from pytest_trt.models.user_data import UserDataError

    s = sess.settings
    seen: set[tuple[object, ...]] = set()
    for c in cases:
        key = (c.model, c.hw, c.precision == "int8")
        if key in seen:
            continue
        seen.add(key)
        try:
            if s.inputs_npz:
                sess.eval_samples(c)
            if s.calib_npz and c.precision == "int8":
                sess.calibration(c)
        except UserDataError as exc:
            raise pytest.UsageError(f"{exc} (model {c.model})") from None
