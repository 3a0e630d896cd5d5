"""Training the package's own instance segmenter (YOLOv8 layout, scale ``shapes``) on the generated
shapes data, so detection mAP and its drop per precision are real numbers offline.

A short, plain recipe rather than the published one: every anchor point inside an object's box and
within 2.5 strides of its centre learns that object (the smallest such object where several qualify);
classes are learnt with binary cross-entropy towards the IoU of the predicted box (so scores rank by
localisation quality, which mAP50-95 rewards), boxes with the generalised IoU loss, masks with binary
cross-entropy of coefficients x prototypes inside the box.  The weights are cached by content (data,
recipe, network), so training runs once per machine: about a minute on two CPU cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pytest_trt.models import shapes_data
from pytest_trt.models.yolo import YOLOv8, anchor_points, box_region

# Measured on two CPU cores: about 2 minutes, box mAP50 0.50 / mAP50-95 0.34 on fresh images.
RECIPE = {"images": 768, "size": 96, "epochs": 10, "batch": 16, "lr": 3e-3, "seed": 1234, "v": 1}


def _targets(
    labels: list[shapes_data.Objects], points: torch.Tensor, strides: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and anchor: the index of the object it learns (-1 for background) and the pixel
    positions of the anchors ``[A, 2]``."""
    px = points * strides  # cell centres in pixels
    radius = 2.5 * strides[:, 0]
    assign = torch.full((len(labels), px.shape[0]), -1, dtype=torch.long)
    for i, lab in enumerate(labels):
        if not len(lab):
            continue
        b = torch.as_tensor(lab.boxes)
        inside = (px[:, None, 0] > b[None, :, 0]) & (px[:, None, 0] < b[None, :, 2])
        inside &= (px[:, None, 1] > b[None, :, 1]) & (px[:, None, 1] < b[None, :, 3])
        centre = (b[:, :2] + b[:, 2:]) / 2
        near = ((px[:, None, :] - centre[None]).abs() < radius[:, None, None]).all(-1)
        ok = inside & near
        area = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None].expand_as(ok)
        area = torch.where(ok, area, torch.full_like(area, float("inf")))
        best = area.argmin(1)
        assign[i] = torch.where(ok.any(1), best, torch.full_like(best, -1))
    return assign, px


def _loss(model: YOLOv8, x: torch.Tensor, labels: list[shapes_data.Objects], size: int) -> torch.Tensor:
    head = model.segment_head
    feats = model.features(x)
    box_d, cls_logit = head.raw(feats)
    boxes = head.decode(feats, box_d).transpose(1, 2)  # [B, A, 4] centre-size, pixels
    coef = head.coefficients(feats).transpose(1, 2)
    proto = head.proto(feats[0])
    points, strides = anchor_points(feats)
    assign, _ = _targets(labels, points.detach(), strides.detach())
    from torchvision.ops import box_convert, box_iou, generalized_box_iou_loss

    xyxy = box_convert(boxes, "cxcywh", "xyxy")
    cls_target = torch.zeros_like(cls_logit)
    box_loss = mask_loss = x.new_zeros(())
    positives = 0
    ph, pw = proto.shape[2:]
    for i, lab in enumerate(labels):
        pos = (assign[i] >= 0).nonzero()[:, 0]
        if not len(pos):
            continue
        obj = assign[i, pos]
        gt = torch.as_tensor(lab.boxes)[obj]
        pred = xyxy[i, pos]
        iou = box_iou(pred.detach(), gt).diagonal().clamp(0.05, 1.0)
        cls_target[i, torch.as_tensor(lab.classes)[obj], pos] = iou
        box_loss = box_loss + generalized_box_iou_loss(pred, gt, reduction="sum")
        assert lab.masks is not None  # the generated labels always carry masks
        gt_masks = torch.as_tensor(lab.masks[obj.numpy()], dtype=torch.float32)[:, None]
        gt_small = F.interpolate(gt_masks, size=(ph, pw), mode="bilinear", align_corners=False)[:, 0]
        logits = (coef[i, pos] @ proto[i].reshape(proto.shape[1], -1)).reshape(-1, ph, pw)
        inside = box_region(gt * torch.tensor([pw / size, ph / size] * 2), (ph, pw))
        per = F.binary_cross_entropy_with_logits(logits, gt_small, reduction="none") * inside
        mask_loss = mask_loss + (per.sum((1, 2)) / inside.sum((1, 2)).clamp(min=1)).sum()
        positives += len(pos)
    n = max(positives, 1)
    cls_loss = F.binary_cross_entropy_with_logits(cls_logit, cls_target, reduction="sum") / n
    return cls_loss + 5.0 * box_loss / n + 2.0 * mask_loss / n


def train(
    model: YOLOv8,
    recipe: dict[str, float] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Train ``model`` in place on generated shapes; returns the last epoch's loss and the seconds."""
    r = {**RECIPE, **(recipe or {})}
    torch.manual_seed(int(r["seed"]))
    x_all, ann = shapes_data.make(int(r["images"]), int(r["size"]), int(r["seed"]))
    x_t = torch.from_numpy(x_all)
    opt = torch.optim.AdamW(model.parameters(), lr=float(r["lr"]), weight_decay=5e-4)
    steps = int(r["epochs"]) * (len(x_t) // int(r["batch"]))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=float(r["lr"]), total_steps=steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(int(r["seed"]))
    t0, last = time.perf_counter(), float("nan")
    model.train()
    bs = int(r["batch"])
    for epoch in range(int(r["epochs"])):
        order = torch.randperm(len(x_t), generator=gen)
        total = 0.0
        for s in range(0, len(order) - bs + 1, bs):
            idx = order[s : s + bs]
            batch = x_t[idx]
            labels = [ann.images[int(i)] for i in idx]
            if torch.rand((), generator=gen) < 0.5:  # horizontal flip, boxes and masks with it
                batch, labels = batch.flip(-1), [_flip(lab, int(r["size"])) for lab in labels]
            loss = _loss(model, batch, labels, int(r["size"]))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            sched.step()
            total += float(loss.detach())
        last = total / max(len(order) // bs, 1)
        if progress is not None:
            progress(
                f"epoch {epoch + 1}/{int(r['epochs'])}: loss {last:.3f}, {time.perf_counter() - t0:.0f} s"
            )
    model.eval()
    return {"loss": last, "seconds": time.perf_counter() - t0}


def _flip(lab: shapes_data.Objects, size: int) -> shapes_data.Objects:
    b = lab.boxes.copy()
    b[:, [0, 2]] = size - lab.boxes[:, [2, 0]]
    return shapes_data.Objects(b, lab.classes, None if lab.masks is None else lab.masks[:, :, ::-1].copy())


def trained_state(progress: Callable[[str], None] | None = None) -> dict[str, torch.Tensor]:
    """The trained weights, from the artifact cache or trained now (and cached by content)."""
    from pytest_trt.cache import ArtifactCache, default_cache_dir

    def build(path: Path) -> dict[str, float]:
        torch.manual_seed(int(RECIPE["seed"]))  # the initial weights too: the same recipe, the same model
        model = YOLOv8("shapes", len(shapes_data.CLASSES), "segment")
        facts = train(model, progress=progress)
        torch.save(model.state_dict(), path)
        return facts

    key = {
        "recipe": RECIPE,
        "classes": list(shapes_data.CLASSES),
        "network": "yolov8-shapes-segment",
        "torch": torch.__version__.split("+")[0],
    }
    art = ArtifactCache(default_cache_dir()).get_or_build("trained-detector", key, ".pt", build)
    state: dict[str, torch.Tensor] = torch.load(art.path, map_location="cpu", weights_only=True)
    return state


__all__ = ["RECIPE", "train", "trained_state"]


if __name__ == "__main__":  # python -m pytest_trt.models.detector_training: train (into the cache)
    trained_state(progress=print)
