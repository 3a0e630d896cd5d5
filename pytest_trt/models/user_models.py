"""Your own models: ``pytest_trt.register_model(...)`` from a conftest or test module, and ``--trt-onnx``.

A declaration is checked when the benchmarks that select it are collected, never at import: a name
given twice, a missing file, an ONNX file that fails ``onnx.checker``, shapes that do not fit the
graph, or a module whose ``forward`` fails on the declared inputs each become *one* error for that
model (a test ``<name>-invalid`` that fails with what to fix), while every other model runs.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from pytest_trt.models import zoo
from pytest_trt.models.export import OnnxModelError
from pytest_trt.models.onnx_models import Graph, read_graph, spec_for_onnx
from pytest_trt.models.onnx_shapes import ShapeError, Shapes
from pytest_trt.models.signature import InputSpec, Shape
from pytest_trt.models.user_data import expected_inputs

USER_TAG = "user"

# name -> why its declaration is unusable (reported at collection as that model's one error)
_PROBLEMS: dict[str, str] = {}
_CHECKED: set[str] = set()  # models whose declaration was validated (once per process)
_ORIGINS: dict[str, str] = {}  # name -> where it was declared, for "registered twice" messages
_ADDED: set[str] = set()  # names this module put into the zoo (the zoo's own models are never removed)


class ModelDeclarationError(ValueError):
    """A user's model declaration cannot be used; the message names the model and what to fix."""


InputsArg = InputSpec | Sequence[InputSpec] | Mapping[str, Sequence[int]] | Sequence[int]


def _input_specs(name: str, inputs: InputsArg, dtypes: Mapping[str, str] | None) -> list[InputSpec]:
    """``{"image": (3, 224, 224)}``, ``(3, 224, 224)``, an InputSpec or several -> InputSpecs."""
    if isinstance(inputs, InputSpec):
        return [inputs]
    if isinstance(inputs, Mapping):
        specs = []
        for n, shape in inputs.items():
            dt = (dtypes or {}).get(n, "float32")
            specs.append(InputSpec(tuple(int(d) for d in shape), name=n, dtype=dt, size_axes=()))
        return specs
    seq: list[Any] = list(inputs)
    if seq and all(isinstance(i, InputSpec) for i in seq):
        return seq
    if seq and all(isinstance(d, int) for d in seq):
        dt = (dtypes or {}).get("input", "float32")
        return [InputSpec(tuple(seq), name="input", dtype=dt, size_axes=())]
    raise ModelDeclarationError(
        f"model {name!r}: inputs={inputs!r} is not an input spec; give per-sample shapes by name, "
        "e.g. inputs={'image': (3, 224, 224)}, or InputSpec objects"
    )


def _beside(origin: str, path: Path) -> Path:
    """A relative path is read from the declaring file's directory (a conftest's neighbour), as the user
    wrote it there; the working directory is the fallback."""
    if path.is_absolute():
        return path
    here = Path(origin.rsplit(":", 1)[0]).parent / path
    return here if here.exists() or not path.exists() else path


_PACKAGE_DIR = os.path.dirname(os.path.dirname(__file__))  # pytest_trt/: frames inside it are ours


def _caller() -> str:
    for frame in inspect.stack()[2:6]:
        if not frame.filename.startswith(_PACKAGE_DIR):
            return f"{frame.filename}:{frame.lineno}"
    return "?"


def register_model(
    name: str,
    *,
    onnx: str | os.PathLike[str] | None = None,
    module: Callable[[], nn.Module] | None = None,
    inputs: InputsArg | None = None,
    dtypes: Mapping[str, str] | None = None,
    shapes: Mapping[str, Shape] | None = None,
    min_shapes: Mapping[str, Shape] | None = None,
    max_shapes: Mapping[str, Shape] | None = None,
    task: str = "generic",
    num_classes: int | None = None,
    output_names: Sequence[str] = (),
    trained: bool = True,
    tags: Sequence[str] = (),
    description: str = "",
    batch_axes: Mapping[str, int | None] | None = None,
    input_values: Mapping[str, float] | None = None,
) -> str:
    """Declare a model for the benchmarks: an ONNX file (``onnx=``) or a module factory (``module=``).

    - ``onnx``: inputs come from the graph; ``shapes`` / ``min_shapes`` / ``max_shapes`` (full shapes,
      as trtexec's ``--shapes``) size its dynamic axes; ``batch_axes`` says where a tensor holds the batch
      when the graph's symbols do not (``{"state": 1}``, ``None`` for none) and ``input_values`` fills an
      input with one number (``{"sr": 16000}``).  There is no PyTorch module, so the fp32 reference is
      ONNX Runtime on CPU.
    - ``module``: a zero-argument factory returning the ``nn.Module`` with its weights; ``inputs`` gives
      each ``forward`` argument's per-sample shape by name (``{"image": (3, 224, 224)}``), ``dtypes`` any
      that are not float32.  ``trained=False`` says the weights are random: the same-recipe reference
      rule then judges instead of absolute thresholds.
    - ``task``: generic (closeness, errors, cosine), classification, segmentation, regression, embedding.

    Returns the name; select it with ``@pytest.mark.trt_matrix(models=[name])`` or ``tag="user"``.
    Problems are reported when the benchmarks are collected, as one failing ``<name>-invalid`` test.
    """
    origin = _caller()
    if onnx is not None:
        onnx = _beside(origin, Path(os.fspath(onnx)).expanduser())
    try:
        spec = _declare(
            name, onnx, module, inputs, dtypes,
            Shapes(dict(shapes or {}), dict(min_shapes or {}), dict(max_shapes or {}), dict(batch_axes or {}),
                   dict(input_values or {})),
            task, num_classes, output_names, trained, tags, description,
        )  # fmt: skip
    except (ModelDeclarationError, OnnxModelError, ShapeError) as exc:
        _problem(name, str(exc), origin, tags)
        return name
    _register(spec, origin)
    return name


def _declare(
    name: str,
    onnx: str | os.PathLike[str] | None,
    module: Callable[[], nn.Module] | None,
    inputs: InputsArg | None,
    dtypes: Mapping[str, str] | None,
    shapes: Shapes,
    task: str,
    num_classes: int | None,
    output_names: Sequence[str],
    trained: bool,
    tags: Sequence[str],
    description: str,
) -> zoo.ModelSpec:
    if not name or any(c.isspace() for c in name) or "[" in name:
        raise ModelDeclarationError(f"model name {name!r}: use a non-empty name without spaces or brackets")
    if task not in zoo.TASKS:
        raise ModelDeclarationError(
            f"model {name!r}: unknown task {task!r}; choose one of {', '.join(zoo.TASKS)}"
        )
    if (onnx is None) == (module is None):
        raise ModelDeclarationError(
            f"model {name!r}: give exactly one of onnx='path/model.onnx' or module=<factory returning nn.Module>"
        )
    if onnx is not None:
        if inputs is not None:
            raise ModelDeclarationError(
                f"model {name!r}: an ONNX file's inputs come from its graph; size dynamic axes with shapes=..."
            )
        spec = spec_for_onnx(
            name,
            Path(os.fspath(onnx)).expanduser(),
            shapes=shapes,
            task=task,
            num_classes=num_classes,
            description=description,
            tags=frozenset((USER_TAG, *tags)),
        )
        return replace(spec, trained=trained)
    assert module is not None
    if not callable(module) or isinstance(module, nn.Module):
        raise ModelDeclarationError(
            f"model {name!r}: module= takes a factory (e.g. lambda: MyNet()), not a module instance, so each "
            "session builds its own copy"
        )
    if inputs is None:
        raise ModelDeclarationError(
            f"model {name!r}: declare the module's inputs, e.g. inputs={{'x': (3, 224, 224)}}"
        )
    specs = _input_specs(name, inputs, dtypes)
    return zoo.ModelSpec(
        name,
        task,
        module,
        specs[0],
        num_classes,
        family="user",
        tags=frozenset((USER_TAG, *tags)),
        description=description or f"user module {getattr(module, '__name__', 'factory')}",
        extra_inputs=tuple(specs[1:]),
        output_names=tuple(output_names),
        trained=trained,
        user=True,
    )


def _register(spec: zoo.ModelSpec, origin: str) -> None:
    if spec.name in _PROBLEMS:
        return
    try:
        zoo.get(spec.name)
    except KeyError:
        zoo.register(spec)
        _ADDED.add(spec.name)
        _ORIGINS[spec.name] = origin
        return
    first = _ORIGINS.get(spec.name, "the model zoo")
    if first == origin:  # the same declaration imported again (a conftest re-imported): harmless
        return
    _problem(
        spec.name,
        f"model {spec.name!r} is registered twice (first at {first}, again at {origin}); give one of them "
        "another name",
        origin,
    )


def _problem(name: str, message: str, origin: str, tags: Sequence[str] = ()) -> None:
    _PROBLEMS.setdefault(
        name, message if message.startswith(f"model {name!r}") else f"model {name!r}: {message}"
    )
    try:
        zoo.get(name)
    except KeyError:
        _ORIGINS.setdefault(name, origin)
        _ADDED.add(name)
        # A placeholder keeps the name selectable (-k, models=[...]) so its error is reported where asked.
        zoo.register(
            zoo.ModelSpec(
                name, "generic", _invalid, InputSpec((1,)), tags=frozenset({USER_TAG, *tags}), user=True
            )
        )


def _invalid() -> nn.Module:
    raise ModelDeclarationError("this model's declaration is invalid")


def is_builtin(name: str) -> bool:
    """A model of the zoo itself (a user declaration of that name is the error, not the zoo model)."""
    return not zoo.get(name).user


def problem_names() -> list[str]:
    return list(_PROBLEMS)


def problem(name: str) -> str | None:
    """Why ``name``'s declaration is unusable (validating it now if never done), or None."""
    if name in _PROBLEMS:
        return _PROBLEMS[name]
    spec = zoo.get(name)
    # An ONNX file was read and checked when it was declared; a module is only built now, when selected.
    if not spec.user or spec.is_onnx or name in _CHECKED:
        return None
    _CHECKED.add(name)
    try:
        check_forward(spec)
    except ModelDeclarationError as exc:
        _PROBLEMS[name] = str(exc)
    return _PROBLEMS.get(name)


def check_forward(spec: zoo.ModelSpec) -> None:
    """Build the module and run ``forward`` on two synthetic samples of the declared inputs."""
    import numpy as np
    import torch

    try:
        model = spec.factory()
    except Exception as exc:
        raise ModelDeclarationError(
            f"model {spec.name!r}: its factory failed ({type(exc).__name__}: {str(exc)[:300]}); fix the factory"
        ) from exc
    if not isinstance(model, nn.Module):
        raise ModelDeclarationError(
            f"model {spec.name!r}: the factory returned {type(model).__name__}, not a torch.nn.Module"
        )
    rng = np.random.default_rng(0)
    args = [torch.from_numpy(i.draw(2, rng)) for i in spec.inputs]
    try:
        with torch.inference_mode():
            model.eval()(*args)
    except Exception as exc:
        raise ModelDeclarationError(
            f"model {spec.name!r}: forward failed on the declared inputs ({expected_inputs(spec.inputs)}) with "
            f"{type(exc).__name__}: {str(exc)[:300]}; fix inputs=/dtypes= to what forward takes"
        ) from exc


UNTRAINED = ":untrained"  # --trt-onnx m.onnx:untrained: this file's weights are not trained


def register_onnx_files(
    files: Sequence[str],
    shapes: Shapes,
    task: str = "generic",
    trained: bool = True,
) -> list[str]:
    """``--trt-onnx [NAME=]PATH[:untrained]`` (repeatable): each file becomes a model named after the file.

    What ``shapes`` says (shapes, batch axes, input values) applies to every file that has tensors of
    those names; a name no file has is an error.  ``trained=False`` (``--trt-onnx-trained no``) or a
    file's ``:untrained`` says its weights are not trained: the same-recipe rule judges it, not the
    absolute thresholds meant for trained outputs.
    """
    names: list[str] = []
    entries: list[tuple[str, str, bool, Graph]] = []  # (label, item, untrained, graph)
    for entry in files:
        untrained = entry.endswith(UNTRAINED)
        item = entry.removesuffix(UNTRAINED)
        label, sep, path = item.partition("=")
        if not sep:
            label, path = Path(item).name, item
        names.append(label)
        if label in names[:-1]:
            _problem(
                label,
                f"two --trt-onnx files are named {label!r}; name them: --trt-onnx NAME=PATH",
                f"--trt-onnx {item}",
                ("cli",),
            )
            continue
        try:
            entries.append((label, item, untrained, read_graph(path)))
        except OnnxModelError as exc:  # like a missing test path: a usage error before anything runs
            raise ModelDeclarationError(f"--trt-onnx {item}: {exc}") from None
    graphs = [g for *_, g in entries]
    known = {t.name for g in graphs for t in (*g.inputs, *g.outputs)}
    stray = sorted(n for n in shapes.named() if n not in known)
    if stray and graphs:
        listing = "; ".join(f"{g.path.name}: {g.describe_inputs()}" for g in graphs)
        raise ModelDeclarationError(
            f"--trt-shapes / --trt-batch-axis / --trt-input-value name {', '.join(map(repr, stray))}, which no "
            f"--trt-onnx file has ({listing})"
        )
    for label, item, untrained, graph in entries:
        own = {t.name for t in (*graph.inputs, *graph.outputs)}
        try:
            spec = spec_for_onnx(
                label, graph.path, shapes=shapes.only(own), task=task, graph=graph, tags=frozenset({"cli"})
            )
        except ShapeError as exc:  # shapes the command line gave: a bad request, as a missing file is
            raise ModelDeclarationError(f"--trt-onnx {item}: {exc}") from None
        if untrained or not trained:
            spec = dataclasses.replace(spec, trained=False)
        _register(spec, f"--trt-onnx {item}")
    return names


def forget() -> None:
    """Forget the session's user declarations (at unconfigure: a new session, as pytester runs in one
    process, declares its models afresh)."""
    for name in _ADDED:
        zoo.unregister(name)
    _ADDED.clear()
    _PROBLEMS.clear()
    _CHECKED.clear()
    _ORIGINS.clear()
