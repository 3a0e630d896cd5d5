"""A labelled detection and instance-segmentation data set made on the spot: filled circles, squares and
triangles drawn over crops of real photographs, each with its class, box and exact mask.

The objects are what a detector must find; the photographs give the backgrounds texture, edges and
colour so the task is not trivial.  Later shapes may cover earlier ones: a mask is what stays visible,
its box is the visible part's extent, and a shape mostly hidden is dropped.  Everything follows from
the seed, so the evaluation labels, the training set and the calibration images are reproducible and
disjoint (different seeds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES = ("circle", "square", "triangle")


@dataclass(frozen=True)
class Objects:
    """The objects of one image: boxes ``[K, 4]`` (x1, y1, x2, y2 in pixels), classes ``[K]``, masks
    ``[K, H, W]`` (bool) and, for detections, scores ``[K]`` (labels have none)."""

    boxes: np.ndarray
    classes: np.ndarray
    masks: np.ndarray | None = None
    scores: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @staticmethod
    def from_lists(
        boxes: list[list[float]], classes: list[int], masks: list[np.ndarray], hw: tuple[int, int]
    ) -> Objects:
        """Labels from per-object lists (boxes as x1, y1, x2, y2), empty lists giving empty arrays."""
        return Objects(
            np.asarray(boxes, np.float32).reshape(-1, 4),
            np.asarray(classes, np.int64),
            np.asarray(masks, bool).reshape(-1, *hw),
        )

    @staticmethod
    def empty(hw: tuple[int, int], with_masks: bool = True) -> Objects:
        return Objects(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.int64),
            np.zeros((0, *hw), bool) if with_masks else None,
            np.zeros(0, np.float32),
        )


@dataclass(frozen=True)
class Annotations:
    """Ground truth of a set of images (one :class:`Objects` per image), with its class names."""

    images: tuple[Objects, ...]
    hw: tuple[int, int]
    classes: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.images)

    def take(self, start: int, stop: int) -> Annotations:
        return Annotations(self.images[start:stop], self.hw, self.classes, self.source)


def _shape_mask(kind: int, cx: float, cy: float, r: float, angle: float, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if kind == 0:
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    # squares and triangles: inside every edge of the rotated polygon
    n = 4 if kind == 1 else 3
    a = angle + 2 * np.pi * np.arange(n) / n
    px, py = cx + r * np.cos(a), cy + r * np.sin(a)
    inside = np.ones((size, size), bool)
    for i in range(n):
        x0, y0, x1, y1 = px[i], py[i], px[(i + 1) % n], py[(i + 1) % n]
        inside &= (x1 - x0) * (yy - y0) - (y1 - y0) * (xx - x0) >= 0
    return inside


def _backgrounds(size: int) -> list[np.ndarray]:
    from pytest_trt.models.photographs import photo_images

    return [im for _, im in photo_images()]


def _background(photos: list[np.ndarray], rng: np.random.Generator, size: int) -> np.ndarray:
    from PIL import Image

    im = photos[int(rng.integers(len(photos)))]
    h, w = im.shape[:2]
    side = int(min(h, w) * rng.uniform(0.3, 1.0))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(im[top : top + side, left : left + side]).resize((size, size))
    return np.asarray(crop, np.float32) / 255.0


def _objects(rng: np.random.Generator, size: int, most: int) -> tuple[list[np.ndarray], list[int], list[int]]:
    masks: list[np.ndarray] = []
    kinds: list[int] = []
    areas: list[int] = []
    for _ in range(int(rng.integers(1, most + 1))):
        kind = int(rng.integers(len(CLASSES)))
        r = float(rng.uniform(0.07, 0.22) * size)
        cx, cy = (float(v) for v in rng.uniform(r, size - r, 2))
        m = _shape_mask(kind, cx, cy, r, float(rng.uniform(0, 2 * np.pi)), size)
        for prev in masks:
            prev &= ~m  # the new shape is drawn on top
        masks.append(m)
        kinds.append(kind)
        areas.append(int(m.sum()))
    return masks, kinds, areas


def make(n: int, size: int, seed: int, most: int = 4) -> tuple[np.ndarray, Annotations]:
    """``n`` images ``[n, 3, size, size]`` (float32 in [0, 1]) and their objects."""
    rng = np.random.default_rng(seed)
    photos = _backgrounds(size)
    images, labels = [], []
    for _ in range(n):
        img = _background(photos, rng, size)
        masks, kinds, areas = _objects(rng, size, most)
        keep_boxes, keep_cls, keep_masks = [], [], []
        for m, k, area in zip(masks, kinds, areas, strict=True):
            colour = rng.uniform(0, 1, 3).astype(np.float32)
            img[m] = 0.15 * img[m] + 0.85 * colour  # a little texture shows through
            ys, xs = np.nonzero(m)
            if len(xs) < 0.4 * area:
                continue  # mostly covered: not an object any more
            keep_boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            keep_cls.append(k)
            keep_masks.append(m)
        images.append(img.transpose(2, 0, 1))
        labels.append(Objects.from_lists(keep_boxes, keep_cls, keep_masks, (size, size)))
    source = f"shapes-on-photos(seed={seed},n={n},size={size})"
    return np.stack(images).astype(np.float32), Annotations(tuple(labels), (size, size), CLASSES, source)


__all__ = ["CLASSES", "Annotations", "Objects", "make"]
