"""Detection and instance segmentation: the YOLOv8 networks, post-processing, COCO mAP (checked against
pycocotools), the generated labelled data, and the verdicts on a trained detector's engines, clean and
corrupted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_trt.models import shapes_data
from pytest_trt.models.shapes_data import Objects
from pytest_trt.models.yolo import YOLOv8, YOLOv8Classifier
from pytest_trt.quality import detection
from tests.conftest import fast_args, load_json

# -- the networks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "task", "published_millions"),
    [("n", "detect", 3.2), ("n", "segment", 3.4), ("s", "segment", 11.8), ("l", "segment", 46.0)],
)
def test_yolov8_has_the_published_parameter_count(scale: str, task: str, published_millions: float) -> None:
    model = YOLOv8(scale, 80, task)
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert count == pytest.approx(published_millions, abs=0.05)


def test_yolov8_classifier_has_the_published_parameter_count() -> None:
    count = sum(p.numel() for p in YOLOv8Classifier("n", 1000).parameters()) / 1e6
    assert count == pytest.approx(2.7, abs=0.05)


def test_segmenter_returns_the_exported_layout_at_any_multiple_of_32() -> None:
    model = YOLOv8("n", 80, "segment").eval()
    with torch.no_grad():
        head, proto = model(torch.rand(2, 3, 320, 256))
    anchors = sum((320 // s) * (256 // s) for s in (8, 16, 32))
    assert head.shape == (2, 4 + 80 + 32, anchors)
    assert proto.shape == (2, 32, 80, 64)
    scores = head[:, 4:84]
    assert float(scores.min()) >= 0.0 and float(scores.max()) <= 1.0  # after the sigmoid


def test_parameter_names_follow_the_published_checkpoints() -> None:
    keys = set(YOLOv8("n", 80, "segment").state_dict())
    assert {"model.0.conv.weight", "model.9.cv2.bn.running_var", "model.22.dfl.conv.weight"} <= keys
    assert {"model.22.proto.upsample.weight", "model.22.cv4.2.2.bias"} <= keys


# -- post-processing ------------------------------------------------------------------------------


def _head(
    boxes: list[tuple[float, float, float, float]], scores: list[float], classes: list[int]
) -> np.ndarray:
    """A made-up detector head ``[1, 4 + 3, A]``: the given boxes (centre-size) and class scores."""
    a = len(boxes)
    y = np.zeros((1, 4 + 3, a), np.float32)
    for k, (b, s, c) in enumerate(zip(boxes, scores, classes, strict=True)):
        y[0, :4, k] = b
        y[0, 4 + c, k] = s
    return y


def test_postprocess_keeps_the_best_of_overlapping_boxes_and_drops_low_scores() -> None:
    head = _head(
        [(30, 30, 20, 20), (31, 30, 20, 20), (70, 70, 10, 10), (50, 50, 8, 8)],
        [0.9, 0.8, 0.6, 0.0005],
        [0, 0, 2, 1],
    )
    (dets,) = detection.postprocess([head], 3, (96, 96))
    assert dets.classes.tolist() == [0, 2]
    np.testing.assert_allclose(dets.boxes[0], [20, 20, 40, 40])
    np.testing.assert_allclose(dets.scores, [0.9, 0.6], rtol=1e-6)


def test_masks_are_assembled_from_prototypes_inside_each_box() -> None:
    head = _head([(24, 24, 16, 16)], [0.9], [1])
    coef = np.zeros((1, 2, 1), np.float32)
    coef[0, 0, 0] = 1.0  # the detection uses prototype 0 only
    proto = np.full((1, 2, 12, 12), -5.0, np.float32)
    proto[0, 0] = 5.0  # prototype 0 is "on" everywhere: the box alone bounds the mask
    (dets,) = detection.postprocess([np.concatenate([head, coef], 1), proto], 3, (48, 48))
    assert dets.masks is not None and dets.masks.shape == (1, 48, 48)
    ys, xs = np.nonzero(dets.masks[0])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (16, 31, 16, 31)


# -- COCO mAP -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled() -> shapes_data.Annotations:
    return shapes_data.make(12, 64, seed=3)[1]


def _as_detections(truth: list[Objects], rng: np.random.Generator, jitter: float) -> list[Objects]:
    out = []
    for t in truth:
        boxes = t.boxes + rng.normal(0, jitter, t.boxes.shape).astype(np.float32)
        masks = None if t.masks is None else np.roll(t.masks, round(jitter / 2), axis=2)
        out.append(Objects(boxes, t.classes, masks, rng.uniform(0.3, 1.0, len(t)).astype(np.float32)))
    return out


def test_the_truth_itself_scores_a_perfect_map(labelled: shapes_data.Annotations) -> None:
    truth = list(labelled.images)
    found = _as_detections(truth, np.random.default_rng(0), 0.0)
    for kind in ("bbox", "segm"):
        assert detection.coco_map(truth, found, labelled.hw, 3, kind) == pytest.approx((1.0, 1.0))


def test_missing_every_object_scores_zero(labelled: shapes_data.Annotations) -> None:
    empty = [Objects.empty(labelled.hw) for _ in labelled.images]
    assert detection.coco_map(list(labelled.images), empty, labelled.hw, 3) == (0.0, 0.0)


@pytest.mark.parametrize("kind", ["bbox", "segm"])
def test_map_agrees_with_pycocotools(labelled: shapes_data.Annotations, kind: str) -> None:
    """faster-coco-eval and pycocotools on the same imperfect detections: the same mAP50 and mAP50-95."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth = list(labelled.images)
    found = _as_detections(truth, np.random.default_rng(1), 3.0)
    ours = detection.coco_map(truth, found, labelled.hw, 3, kind)
    gt, res = detection.coco_documents(truth, found, labelled.hw, 3, segm=kind == "segm")
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(res), kind)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ours is not None and 0.05 < ours[1] < 0.95  # imperfect: the cross-check is not trivial
    assert ours == pytest.approx((ev.stats[1], ev.stats[0]), abs=1e-6)


def test_generated_labels_hold_each_visible_shape_with_its_exact_mask() -> None:
    x, ann = shapes_data.make(4, 64, seed=5)
    assert x.shape == (4, 3, 64, 64) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    for obj in ann.images:
        assert obj.masks is not None and len(obj) >= 1
        for box, mask in zip(obj.boxes, obj.masks, strict=True):
            ys, xs = np.nonzero(mask)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert not (obj.masks.sum(0) > 1).any()  # a pixel belongs to one object: covered parts removed


# -- verdicts on the trained detector's engines ------------------------------------------------------

BENCH = """
import pytest

@pytest.mark.trt_matrix(models=["yolov8_shapes_seg"], hws=[96], batches=[8], profiles=["dynamic"])
def test_q(trt_run):
    trt_run.run()
"""
FAULTS = ("shift_boxes", "drop_detections", "swap_masks_last", "noise")


# what the smoke tier asks of this small detector's int8 (benchmarks/test_detection.py): 95 % of fp32 mAP
INT8_GATES = [
    f"--trt-gate=int8:{g}" for g in ("map50_95>=0.95xbase", "mask_map50_95>=0.95xbase", "cosine_min>=0.8")
]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifact cache for these runs: the export, fp16 and int8 graphs are made once."""
    return tmp_path_factory.mktemp("detector-cache")


_RUNS: dict[
    tuple[str, ...], dict[str, Any]
] = {}  # a run's cases by its arguments: tests that ask alike share it


def _run(
    pytester: pytest.Pytester, cache: Path, backends: str, precision: str, *extra: str
) -> dict[str, Any]:
    key = (str(cache), backends, precision, *extra)
    if key not in _RUNS:
        _RUNS[key] = _run_now(pytester, cache, backends, precision, *extra)
    return _RUNS[key]


CLEAN_AND_FAULTY = "onnxruntime," + ",".join(f"faulty_{f}" for f in FAULTS)


def _run_now(
    pytester: pytest.Pytester, cache: Path, backends: str, precision: str, *extra: str
) -> dict[str, Any]:
    pytester.makepyfile(test_q=BENCH)
    out = pytester.path / "run.json"
    pytester.runpytest_inprocess(
        *fast_args(cache, f"--trt-backend={backends}", f"--trt-precision={precision}"),
        "--trt-calib-samples=32",
        f"--trt-json={out}",
        *extra,
    )
    return {c["extra_info"]["backend"]: c for c in load_json(out)["cases"]}


def _failed(case: dict[str, Any]) -> set[str]:
    return {g["gate"] for g in case["extra_info"]["quality"]["gates"] if not g["passed"] and not g["skipped"]}


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_clean_detector_engine_passes_and_each_corrupted_one_fails(
    pytester: pytest.Pytester, shared_cache: Path, precision: str
) -> None:
    extra = INT8_GATES if precision == "int8" else []
    cases = _run(pytester, shared_cache, CLEAN_AND_FAULTY, precision, *extra)
    clean = cases["onnxruntime"]
    assert clean["status"] == "ok", _failed(clean)
    det = clean["extra_info"]["quality"]["detection"]
    assert det["baseline_map50"] > 0.3 and det["baseline_mask_map50"] > 0.3  # a detector that detects
    for fault in FAULTS:
        case = cases[f"faulty_{fault}"]
        assert case["status"] == "quality_failed", f"{fault} passed at {precision}"


def test_the_default_int8_gate_asks_for_mlperfs_99_percent_of_fp32_map(
    pytester: pytest.Pytester, shared_cache: Path
) -> None:
    """The default int8 rule judges box mAP50-95 against 99 % of fp32's, whichever way the honest engine
    falls (it lost 2-4 % with one trained detector, nothing with the one trained on another machine)."""
    case = _run(pytester, shared_cache, "onnxruntime", "int8")["onnxruntime"]
    det = case["extra_info"]["quality"]["detection"]
    kept = det["map50_95"] >= 0.99 * det["baseline_map50_95"]
    judged = {g["gate"]: g for g in case["extra_info"]["quality"]["gates"]}
    assert "map50_95>=0.99xbase" in judged
    assert judged["map50_95>=0.99xbase"]["passed"] is kept
    assert (case["status"] == "ok") is not bool(_failed(case))


def test_the_postprocessing_stage_is_timed_on_its_own(pytester: pytest.Pytester, shared_cache: Path) -> None:
    case = _run(pytester, shared_cache, CLEAN_AND_FAULTY, "fp32")["onnxruntime"]  # the fp32 verdicts' run
    post = case["extra_info"]["postprocess_ms"]
    assert post["batch"] == 8 and post["host"] > 0
    parts = case["extra_info"]["wall_s"]["quality_parts"]  # and its seconds are not the mAP's
    assert parts["postprocess_timing"] > 0 and parts["detection"] > 0


def test_an_image_without_detections_gets_no_masks() -> None:
    head = _head([(24, 24, 16, 16)], [0.0001], [1])  # below every threshold
    coef, proto = np.zeros((1, 2, 1), np.float32), np.zeros((1, 2, 12, 12), np.float32)
    (dets,) = detection.postprocess([np.concatenate([head, coef], 1), proto], 3, (48, 48))
    assert len(dets) == 0 and dets.masks is not None and dets.masks.shape == (0, 48, 48)


# -- a user's COCO data ---------------------------------------------------------------------------


def _coco_files(tmp_path: Path, n: int = 6) -> tuple[Path, Path]:
    """Generated shapes saved as a COCO data set: images of 96 x 64 (not square) with RLE masks."""
    from PIL import Image

    x, ann = shapes_data.make(n, 96, seed=21)
    images = tmp_path / "images"
    images.mkdir()
    doc: dict[str, Any] = {"images": [], "annotations": [], "categories": [{"id": c + 11} for c in range(3)]}
    for i, (img, obj) in enumerate(zip(x, ann.images, strict=True)):
        crop = (img.transpose(1, 2, 0)[16:80] * 255).astype(np.uint8)  # rows 16-80: 64 high
        Image.fromarray(crop).save(images / f"{i}.png")
        doc["images"].append({"id": i + 1, "file_name": f"{i}.png", "height": 64, "width": 96})
        assert obj.masks is not None
        for k in range(len(obj)):
            m = obj.masks[k][16:80]
            if m.sum() < 4:
                continue
            ys, xs = np.nonzero(m)
            doc["annotations"].append(
                {
                    "id": len(doc["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": int(obj.classes[k]) + 11,
                    "bbox": [
                        float(xs.min()),
                        float(ys.min()),
                        float(xs.max() + 1 - xs.min()),
                        float(ys.max() + 1 - ys.min()),
                    ],
                    "area": float(m.sum()),
                    "iscrowd": 0,
                    "segmentation": detection._rle(m),
                }
            )
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(doc))
    return path, images


def test_coco_data_is_letterboxed_with_its_boxes_and_masks(tmp_path: Path) -> None:
    from pytest_trt.models import coco_data

    ann_path, images = _coco_files(tmp_path)
    x, ann, source = coco_data.load(f"coco:{ann_path}:{images}", 96, 4)
    assert x.shape == (4, 3, 96, 96) and ann is not None and source.startswith("coco:instances.json")
    assert np.allclose(x[:, :, :16], coco_data.PAD) and np.allclose(x[:, :, 80:], coco_data.PAD)  # padding
    for obj in ann.images:
        assert obj.masks is not None and set(obj.classes.tolist()) <= {0, 1, 2}  # ids 11-13 in order
        for box, mask in zip(obj.boxes, obj.masks, strict=True):
            ys, xs = np.nonzero(mask)
            assert abs(ys.min() - box[1]) <= 1 and abs(xs.max() + 1 - box[2]) <= 1  # shifted 16 rows down


def test_a_bad_coco_spec_is_a_usage_error_naming_it(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_q=BENCH)
    r = pytester.runpytest_inprocess(
        *fast_args(tmp_path / "c"), f"--trt-dataset=coco:{tmp_path}/none.json:{tmp_path}"
    )
    assert r.ret == 4
    r.stderr.fnmatch_lines(["*--trt-dataset*none.json does not exist*"])


def test_the_users_coco_labels_give_the_map(
    pytester: pytest.Pytester, shared_cache: Path, tmp_path: Path
) -> None:
    ann_path, images = _coco_files(tmp_path, n=8)
    case = _run(pytester, shared_cache, "onnxruntime", "fp32", f"--trt-dataset=coco:{ann_path}:{images}")
    rec = case["onnxruntime"]["extra_info"]["quality"]
    assert rec["data"]["source"].startswith("coco:instances.json")
    assert (
        rec["detection"]["map50"] is not None
        and rec["detection"]["baseline_map50"] == rec["detection"]["map50"]
    )


def test_the_trained_detector_finds_the_shapes() -> None:
    """The package's detector, trained at first use (or read from the cache), on images it never saw."""
    from pytest_trt.models import detector_training

    model = YOLOv8("shapes", 3, "segment")
    model.load_state_dict(detector_training.trained_state())
    x, labels = shapes_data.make(32, 96, seed=77)
    got = detection.model_map(model.eval(), x, labels)
    # 0.50 here (torch 2.14, 2 threads); training elsewhere gave 0.41 (torch 2.11, 16 threads)
    assert got["map50"] is not None and got["map50"] > 0.3
    assert got["mask_map50"] is not None and got["mask_map50"] > 0.3


def test_the_fp32_detections_are_scored_against_the_labels_once_per_inputs(
    labelled: shapes_data.Annotations, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = _as_detections(list(labelled.images), np.random.default_rng(4), 1.0)
    monkeypatch.setattr(detection, "detect_all", lambda *a, **k: found)
    calls: list[str] = []
    real = detection.coco_map
    monkeypatch.setattr(detection, "coco_map", lambda *a: calls.append(a[-1]) or real(*a))
    base = detection.Fp32Detections(found)
    outputs = [np.zeros(1), np.zeros(1)]  # two outputs: an instance segmenter
    first = detection.quality(outputs, outputs, 3, labelled.hw, labelled, base=base)
    evaluated_first = len(calls)
    second = detection.quality(outputs, outputs, 3, labelled.hw, labelled, base=base)
    assert evaluated_first == 6 and len(calls) - evaluated_first == 4  # labels, fp32 vs labels, agreement
    assert second == first and first["baseline_mask_map50"] == base.label_maps["baseline_mask_map50"]  # type: ignore[index]
