"""The model registry: :class:`ModelSpec` (factory, inputs, task, weight source) by name.

The built-in entries live in :mod:`.catalogue`; users add theirs with ``pytest_trt.register_model``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from pytest_trt.models import pruning
from pytest_trt.models.signature import InputSpec

# "generic": any tensors (a user's graph with no declared task): closeness, errors and cosine only.
TASKS = (
    "classification",
    "segmentation",
    "detection",
    "instance_segmentation",
    "regression",
    "embedding",
    "generic",
)
#: tasks whose outputs are head tensors decoded by post-processing (pytest_trt.quality.detection)
DETECTION_TASKS = ("detection", "instance_segmentation")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    factory: Callable[[], nn.Module]
    input: InputSpec
    num_classes: int | None = None
    torchvision_weights: str | None = None  # e.g. "ResNet18_Weights.IMAGENET1K_V1"
    trainer: Callable[[nn.Module, int], None] | None = None  # in-package trained weights
    family: str = ""
    tags: frozenset[str] = field(default_factory=frozenset)
    description: str = ""
    output_name: str = "output"
    data: str | None = None  # its own evaluation data: "photos", "digits", "shapes" (else synthetic)
    weights_url: str | None = (
        None  # a state dict to download (torch hub cache), for models outside torchvision
    )
    weights_source: str = ""  # how in-package weights (``trainer``) are named in results
    # -- models declared by users (pytest_trt.register_model, --trt-onnx) ---------------------------
    extra_inputs: tuple[InputSpec, ...] = ()  # inputs after the first, in forward/graph order
    onnx_path: str | None = None  # the model *is* this ONNX file: no PyTorch module behind it
    output_names: tuple[str, ...] = ()  # names for the exported outputs (default: output_name)
    output_kinds: tuple[str, ...] = ()  # per output: probability | integer | values (default: values)
    output_batch_axes: tuple[int, ...] = ()  # per output: the axis holding the batch (default 0)
    fixed_batch: int | None = None  # the graph's batch axis is fixed at this size
    batch_range: tuple[int, int, int] | None = None  # its own dynamic batch profile (min/opt/max shapes)
    batches: tuple[int, ...] | None = None  # its own default batch sizes (a batch in --trt-shapes)
    trained: bool = True  # user models: False if the factory makes random weights (the rule judges)
    user: bool = False  # declared by the user: checked at collection (pytest_trt.models.user_models)
    prune: str | None = None  # "2:4": the variant <parent>_sparse24, pruned after its weights load
    parent: str | None = None  # the dense model a pruned variant is made from

    @property
    def inputs(self) -> tuple[InputSpec, ...]:
        return (self.input, *self.extra_inputs)

    def sample_shapes(self, hw: int | None = None) -> list[tuple[int, ...]]:
        """Per-sample shape of every input at resolution ``hw`` (inputs without a resolution keep theirs)."""
        return [i.with_hw(hw) if i.hw_range else i.shape for i in self.inputs]

    @property
    def batch_first(self) -> bool:
        """Every input and output holds the batch on axis 0 (else engines run through a relayout)."""
        return all(i.batch_axis == 0 for i in self.inputs) and not any(self.output_batch_axes)

    def to_graph(self, arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
        """A batch of every input, held batch first, laid out as the graph takes it."""
        return tuple(i.to_graph(a) for i, a in zip(self.inputs, arrays, strict=True))

    def from_graph(self, outputs: Sequence[Any]) -> list[Any]:
        """The graph's outputs with each one's batch axis moved to the front (numpy or torch, a view)."""
        axes = self.output_batch_axes
        out = []
        for k, o in enumerate(outputs):
            axis = axes[k] if k < len(axes) else 0
            if axis and getattr(o, "ndim", 0) > axis:
                o = o.movedim(axis, 0) if hasattr(o, "movedim") else np.moveaxis(o, axis, 0)
            out.append(o)
        return out

    @property
    def is_onnx(self) -> bool:
        return self.onnx_path is not None

    @property
    def exported_output_names(self) -> list[str] | None:
        if self.output_names:
            return list(self.output_names)
        return [self.output_name] if not self.user else None


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.task not in TASKS:
        raise ValueError(f"model {spec.name!r}: unknown task {spec.task!r}; choose one of {TASKS}")
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: str) -> ModelSpec:
    dense, pruned = pruning.split(name)
    if pruned and name not in _REGISTRY and dense in _REGISTRY and not _REGISTRY[dense].is_onnx:
        base = _REGISTRY[dense]
        _REGISTRY[name] = dataclasses.replace(
            base,
            name=name,
            prune=pruning.PATTERN,
            parent=dense,
            description=f"{base.description or dense}, weights pruned to 2:4 structured sparsity",
        )
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(_REGISTRY))}") from None


def names(task: str | None = None, tag: str | None = None) -> list[str]:
    return [
        n
        for n, s in _REGISTRY.items()
        if (task is None or s.task == task) and (tag is None or tag in s.tags) and s.prune is None
    ]  # pruned variants are asked for by name, never selected by default
