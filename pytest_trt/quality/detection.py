"""Detection and instance segmentation: the post-processing stage (score threshold, NMS, mask assembly)
and the task's quality, COCO mAP by a maintained evaluator (``faster-coco-eval``).

Post-processing reads YOLOv8's exported outputs: ``[B, 4 + nc (+ 32), A]`` (centre-size boxes in
pixels, class scores, mask coefficients) and, for segmenters, prototypes ``[B, 32, H/4, W/4]``.  It
runs in torch, so the same code times the host variant (CPU tensors) and the device variant (CUDA).

Quality, per result (section ``detection``):

* ``map50`` / ``map50_95`` (boxes) and ``mask_map50`` / ``mask_map50_95`` against the data's labels,
  with the fp32 model's own figures as ``baseline_*`` (so ``map50_95>=0.99xbase`` is MLPerf's rule);
* ``agreement_map50`` / ``agreement_map50_95`` (and ``agreement_mask_*``): the engine's detections
  scored against the fp32 model's confident detections (score >= ``AGREEMENT_SCORE``) as if they were
  labels, available with or without labelled data.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_trt.models.shapes_data import Annotations, Objects

#: the evaluation thresholds of COCO-style validation: every box down to this score, at most MAX_DET
#: per image (COCO's AP counts the best 100)
EVAL_SCORE = 0.001
NMS_IOU = 0.7
MAX_DET = 100
MASK_EVAL_MAX = 160
#: fp32 detections at or above this score are the agreement metrics' labels (a deployment's threshold)
AGREEMENT_SCORE = 0.25

#: the mAP figures of a result (``_maps`` names them: prefix, then ``mask_`` for masks)
MAP_METRICS = tuple(
    f"{prefix}{kind}{m}"
    for prefix in ("", "agreement_")
    for kind in ("", "mask_")
    for m in ("map50", "map50_95")
)
METRICS = (*MAP_METRICS, "detections_per_image")


@dataclass(frozen=True)
class HeadLayout:
    """How a head tensor is laid out: ``nc`` class scores after the 4 box values, then ``masks``
    coefficients (0 for a detector)."""

    nc: int
    masks: int = 0

    @staticmethod
    def of(outputs: Sequence[Any], nc: int) -> HeadLayout:
        masks = int(outputs[0].shape[1]) - 4 - nc if len(outputs) > 1 else 0
        if masks < 0:
            raise ValueError(f"head tensor has {outputs[0].shape[1]} channels, fewer than 4 + {nc} classes")
        return HeadLayout(nc, masks)


def _masks(coef: Any, proto: Any, boxes: Any, hw: tuple[int, int], mask_hw: tuple[int, int]) -> Any:
    """Each detection's mask at ``mask_hw``: coefficients x prototypes, resized, cut to its box (given
    in input pixels, ``hw``)."""
    import torch
    import torch.nn.functional as F

    from pytest_trt.models.yolo import box_region

    c, ph, pw = proto.shape
    if not len(coef):  # nothing detected: interpolating an empty stack fails on CUDA
        return torch.zeros((0, *mask_hw), dtype=torch.bool, device=proto.device)
    m = (coef @ proto.reshape(c, -1)).reshape(-1, ph, pw)
    if (ph, pw) != mask_hw:
        m = F.interpolate(m[None], size=mask_hw, mode="bilinear", align_corners=False)[0]
    scale = torch.tensor([mask_hw[1] / hw[1], mask_hw[0] / hw[0]] * 2, device=boxes.device, dtype=boxes.dtype)
    return (m > 0) & box_region(boxes * scale, mask_hw)  # logit > 0 is probability > 0.5


def mask_resolution(hw: tuple[int, int], proto_hw: tuple[int, int]) -> tuple[int, int]:
    """Where masks are compared: the input's pixels up to MASK_EVAL_MAX a side, else the prototypes'
    (a quarter of the input, as YOLOv8's own validation does): a 640 px image's 100 masks would
    otherwise take 40 MB and most of the evaluation's time."""
    return hw if max(hw) <= MASK_EVAL_MAX else proto_hw


def postprocess(
    outputs: Sequence[Any],
    nc: int,
    hw: tuple[int, int],
    score: float = EVAL_SCORE,
    iou: float = NMS_IOU,
    max_det: int = MAX_DET,
) -> list[Objects]:
    """Detections of every image of a batch (numpy or torch outputs; torch runs where they live)."""
    import torch
    from torchvision.ops import batched_nms, box_convert

    head = torch.as_tensor(outputs[0]).float()
    proto = torch.as_tensor(outputs[1]).float() if len(outputs) > 1 else None
    layout = HeadLayout.of(outputs, nc)
    out: list[Objects] = []
    for b in range(head.shape[0]):
        p = head[b].transpose(0, 1)  # [A, C]
        conf, cls = p[:, 4 : 4 + nc].max(1)
        keep = conf > score
        p, conf, cls = p[keep], conf[keep], cls[keep]
        boxes = box_convert(p[:, :4], "cxcywh", "xyxy")
        order = batched_nms(boxes, conf, cls, iou)[:max_det]
        boxes, conf, cls = boxes[order], conf[order], cls[order]
        masks = None
        if proto is not None and layout.masks:
            coef = p[order, 4 + nc : 4 + nc + layout.masks]
            mhw = mask_resolution(hw, (int(proto.shape[2]), int(proto.shape[3])))
            masks = _masks(coef, proto[b], boxes, hw, mhw).cpu().numpy()
        out.append(
            Objects(
                boxes.cpu().numpy().astype(np.float32),
                cls.cpu().numpy().astype(np.int64),
                masks,
                conf.cpu().numpy().astype(np.float32),
            )
        )
    return out


def detect_all(
    outputs: Sequence[np.ndarray],
    nc: int,
    hw: tuple[int, int],
    chunk: int = 16,
    device: str = "cpu",
    **kw: Any,
) -> list[Objects]:
    """Post-processing over a whole evaluation set, a chunk of images at a time (bounded memory), on
    ``device`` (a GPU assembles masks far faster than the host)."""
    import torch

    n = outputs[0].shape[0]
    dets: list[Objects] = []
    for s in range(0, n, chunk):
        part = [torch.as_tensor(np.ascontiguousarray(o[s : s + chunk])).to(device) for o in outputs]
        dets += postprocess(part, nc, hw, **kw)
    return dets


# -- COCO evaluation ------------------------------------------------------------------------------


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from faster_coco_eval.core import mask as mask_util

    r = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    r["counts"] = r["counts"].decode() if isinstance(r["counts"], bytes) else r["counts"]
    return dict(r)


def _resized(masks: np.ndarray, mhw: tuple[int, int]) -> np.ndarray:
    """Masks ``[K, H, W]`` at ``mhw``: a pixel is set where more than half of what it covers was."""
    if not len(masks):
        return masks.reshape(0, *mhw)
    if masks.shape[1:] == mhw:
        return masks
    import torch
    import torch.nn.functional as F

    m = F.interpolate(torch.from_numpy(masks.astype(np.float32))[None], size=mhw, mode="area")[0]
    return (m > 0.5).numpy()


def coco_documents(
    truth: Sequence[Objects], found: Sequence[Objects], hw: tuple[int, int], nc: int, segm: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ground truth as a COCO document and the detections as COCO results (masks compared at the
    detections' mask resolution, the truth's resized to it)."""
    mhw = next((d.masks.shape[1:] for d in found if d.masks is not None), hw) if segm else hw
    if segm:
        truth = [
            Objects(t.boxes, t.classes, None if t.masks is None else _resized(t.masks, mhw)) for t in truth
        ]
    images = [{"id": i + 1, "height": mhw[0], "width": mhw[1]} for i in range(len(truth))]
    anns = [
        {**e, "id": n + 1, "area": area, "iscrowd": 0} for n, (e, _, area) in enumerate(_entries(truth, segm))
    ]
    gt = {"images": images, "annotations": anns, "categories": [{"id": c + 1} for c in range(nc)]}
    res = [{**e, "score": score} for e, score, _ in _entries(found, segm)]
    return gt, res


def _entries(images: Sequence[Objects], segm: bool) -> list[tuple[dict[str, Any], float, float]]:
    """Every object of every image as a COCO entry (image, category, box as x, y, w, h, and its mask's
    RLE when ``segm``), with its score (1 for labels) and its mask's (else its box's) area."""
    out: list[tuple[dict[str, Any], float, float]] = []
    for i, o in enumerate(images):
        for k in range(len(o)):
            x1, y1, x2, y2 = (float(v) for v in o.boxes[k])
            e: dict[str, Any] = {
                "image_id": i + 1,
                "category_id": int(o.classes[k]) + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
            }
            if segm and o.masks is not None:
                e["segmentation"] = _rle(o.masks[k])
            score = float(o.scores[k]) if o.scores is not None else 1.0
            area = float(o.masks[k].sum()) if o.masks is not None else (x2 - x1) * (y2 - y1)
            out.append((e, score, area))
    return out


def coco_map(
    truth: Sequence[Objects], found: Sequence[Objects], hw: tuple[int, int], nc: int, iou_type: str = "bbox"
) -> tuple[float, float] | None:
    """(mAP50, mAP50-95) of ``found`` against ``truth`` (COCO's 101-point AP, areas all); None when the
    truth holds no object (nothing to find: AP is undefined)."""
    from faster_coco_eval import COCO, COCOeval_faster

    if not any(len(t) for t in truth):
        return None
    gt, res = coco_documents(truth, found, hw, nc, segm=iou_type == "segm")
    if not res:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # the evaluator prints its summary table
        coco_gt = COCO(gt)
        ev = COCOeval_faster(coco_gt, coco_gt.loadRes(res), iouType=iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = ev.stats
    return max(float(stats[1]), 0.0), max(float(stats[0]), 0.0)  # -1 means "no such objects": 0 found


def confident(dets: Sequence[Objects], at: float = AGREEMENT_SCORE) -> list[Objects]:
    """Detections at or above a score, as labels (scores dropped)."""
    out = []
    for d in dets:
        keep = d.scores >= at if d.scores is not None else np.ones(len(d), bool)
        out.append(Objects(d.boxes[keep], d.classes[keep], None if d.masks is None else d.masks[keep]))
    return out


def _maps(
    prefix: str, truth: Sequence[Objects], found: Sequence[Objects], hw: Any, nc: int, segm: bool
) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for kind, iou_type in (("", "bbox"), ("mask_", "segm")):
        if kind and not segm:
            continue
        got = coco_map(truth, found, hw, nc, iou_type)
        out[f"{prefix}{kind}map50"], out[f"{prefix}{kind}map50_95"] = got if got else (None, None)
    return out


def _confident_count(d: Objects) -> int:
    return len(d) if d.scores is None else int(np.count_nonzero(d.scores >= AGREEMENT_SCORE))


@dataclass
class Fp32Detections:
    """The fp32 model's detections on an evaluation set, and their mAP against its labels once known."""

    dets: list[Objects]
    label_maps: dict[str, float | None] | None = None


def quality(
    base_outputs: Sequence[np.ndarray],
    out: Sequence[np.ndarray],
    nc: int,
    hw: tuple[int, int],
    labels: Annotations | None,
    device: str = "cpu",
    base: Fp32Detections | None = None,
) -> dict[str, Any]:
    """The ``detection`` section of a result: mAP against labels (engine and fp32) and agreement mAP
    against the fp32 model's confident detections (``base``: those detections and their mAP, where the
    caller keeps them from an earlier case of the same model and inputs)."""
    segm = len(base_outputs) > 1
    if base is None:
        base = Fp32Detections(detect_all(base_outputs, nc, hw, device=device))
    base_dets = base.dets
    dets = detect_all(out, nc, hw, device=device)
    q: dict[str, Any] = {"task": "instance_segmentation" if segm else "detection"}
    if labels is not None:
        q.update(_maps("", labels.images, dets, hw, nc, segm))
        if base.label_maps is None:  # the same for every case of these inputs: evaluated once
            base.label_maps = {
                f"baseline_{k}": v for k, v in _maps("", labels.images, base_dets, hw, nc, segm).items()
            }
        q.update(base.label_maps)
    q.update(_maps("agreement_", confident(base_dets), dets, hw, nc, segm))
    per = [_confident_count(d) for d in dets]
    base_per = [_confident_count(d) for d in base_dets]
    q["detections_per_image"] = float(np.mean(per)) if per else 0.0
    q["baseline_detections_per_image"] = float(np.mean(base_per)) if base_per else 0.0
    q["agreement_score"] = AGREEMENT_SCORE
    return q


def model_map(model: Any, images: np.ndarray, labels: Annotations) -> dict[str, float | None]:
    """Box and mask mAP of a torch detector on labelled images (the trained detector's own check)."""
    import torch

    with torch.no_grad():
        out = model(torch.from_numpy(images))
    outs = [o.numpy() for o in out] if isinstance(out, tuple) else [out.numpy()]
    nc = len(labels.classes)
    dets = detect_all(outs, nc, labels.hw)
    return _maps("", labels.images, dets, labels.hw, nc, segm=len(outs) > 1)


def time_postprocess(
    outputs: Sequence[np.ndarray], nc: int, hw: tuple[int, int], batch: int, device: str, repeats: int = 7
) -> dict[str, Any]:
    """Median milliseconds of post-processing one batch (``batch`` images of these outputs) at a
    deployment's score threshold (``AGREEMENT_SCORE``), on the host and, where ``device`` is CUDA, on
    the device (outputs already there, as an engine leaves them)."""
    import time

    import torch

    take = [torch.as_tensor(np.ascontiguousarray(o[:batch])) for o in outputs]
    out: dict[str, Any] = {"batch": int(take[0].shape[0]), "images_hw": list(hw), "score": AGREEMENT_SCORE}
    targets = [("host", "cpu")] + ([("device", device)] if device.startswith("cuda") else [])
    for name, dev in targets:
        moved = [t.to(dev) for t in take]
        times = []
        for _ in range(repeats + 1):  # the first call warms up (kernels, allocator)
            if dev != "cpu":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            postprocess(moved, nc, hw, score=AGREEMENT_SCORE)
            if dev != "cpu":
                torch.cuda.synchronize(dev)
            times.append((time.perf_counter() - t0) * 1e3)
        out[name] = float(np.median(times[1:]))
    return out


__all__ = [
    "AGREEMENT_SCORE",
    "MAP_METRICS",
    "METRICS",
    "Fp32Detections",
    "coco_documents",
    "coco_map",
    "confident",
    "detect_all",
    "model_map",
    "postprocess",
    "quality",
    "time_postprocess",
]
