"""Data: ImageFolder on real sample images (scikit-image), digits with real labels, calibration split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_trt.models import datasets, zoo

skimage_data = pytest.importorskip("skimage.data", exc_type=ImportError)
Image = pytest.importorskip("PIL.Image", exc_type=ImportError)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    root = tmp_path / "val"
    samples = {
        "astronaut": skimage_data.astronaut(),
        "coffee": skimage_data.coffee(),
        "chelsea": skimage_data.chelsea(),
        "rocket": skimage_data.rocket(),
    }
    for i, (name, arr) in enumerate(samples.items()):
        d = root / f"n{i:08d}"
        d.mkdir(parents=True)
        Image.fromarray(arr).save(d / f"{name}.png")
        Image.fromarray(np.ascontiguousarray(arr[::-1])).save(d / f"{name}_flipped.jpg")
    return root


def test_image_folder_preprocessing_and_labels(image_folder: Path) -> None:
    s = datasets.load_image_folder(image_folder, 224, limit=6)
    assert s.x.shape == (6, 3, 224, 224) and s.x.dtype == np.float32
    assert list(s.labels) == [0, 1, 2, 3, 0, 1]  # classes interleaved, sorted by folder name
    assert -3 < float(s.x.mean()) < 3 and s.x.std() > 0.3  # ImageNet-normalised range
    calib = datasets.calibration_samples(datasets.DataConfig(str(image_folder), 4, 2), (3, 224, 224), None)
    assert len(calib) == 2 and calib.source.startswith("imagefolder:")
    assert not np.array_equal(calib.x[0], s.x[0])  # calibration images follow the evaluation ones


def test_digits_classifier_trains_to_real_accuracy() -> None:
    model, src = zoo.load_model(zoo.get("digits_cnn"), "pretrained", seed=0)
    assert src == "trained-in-package(seed=0)"
    test = datasets.eval_samples(datasets.DataConfig(eval_samples=0), (1, 8, 8), "digits")
    import torch

    with torch.no_grad():
        acc = float((model(torch.from_numpy(test.x)).argmax(1).numpy() == test.labels).mean())
    assert acc > 0.9 and len(test) == 540


def test_synthetic_is_seeded() -> None:
    a, b, c = (
        datasets.synthetic((3, 8, 8), 4, 1),
        datasets.synthetic((3, 8, 8), 4, 1),
        datasets.synthetic((3, 8, 8), 4, 2),
    )
    assert a.digest() == b.digest() != c.digest()


def test_digits_accuracy_path_end_to_end(pytester: pytest.Pytester, shared_cache: Path) -> None:
    """fp32 / fp16 / int8-QDQ onnxruntime engines of a trained classifier, judged on real labels."""
    from tests.conftest import fast_args, load_json

    pytester.makepyfile(
        test_d="""
import pytest
@pytest.mark.trt_matrix(models=["digits_cnn"], backends=["onnxruntime"], precisions=["fp32", "fp16", "int8"],
                        batches=[32])
def test_d(trt_run):
    trt_run.run()
"""
    )
    out = pytester.path / "d.json"
    r = pytester.runpytest(
        *fast_args(shared_cache), "--trt-samples=540", "--trt-calib-samples=64", f"--benchmark-json={out}"
    )
    r.assert_outcomes(passed=3)
    acc = {}
    for b in load_json(out)["benchmarks"]:
        c = b["extra_info"]["quality"]["classification"]
        acc[b["extra_info"]["precision"]] = (
            c["baseline_accuracy_top1"],
            c["accuracy_top1"],
            c["top1_agreement"],
        )
        assert b["extra_info"]["quality"]["agreement_meaningful"] is True
        assert any(
            g["gate"].startswith("accuracy_top1") and g["skipped"] is None
            for g in b["extra_info"]["quality"]["gates"]
        )
    assert acc["fp32"][0] > 0.9 and abs(acc["fp32"][1] - acc["fp32"][0]) < 1e-9
    assert acc["int8"][1] >= 0.97 * acc["fp32"][0]
