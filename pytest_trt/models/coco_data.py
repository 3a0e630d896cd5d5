"""A user's labelled detection data in COCO form: ``--trt-dataset coco:ANNOTATIONS.json:IMAGES_DIR``.

Images are letterboxed to the model's square input (scaled to fit, padded with grey 114, as YOLO
models are fed) in RGB [0, 1]; boxes and masks (polygons or RLE, decoded by faster-coco-eval) follow the
same transform.  Classes are the file's category ids in ascending order (COCO's 80 ids map to YOLO's
class indices 0-79 this way).  Crowd regions are left out.  The first images (by id) are the evaluation
set and the ones after them calibrate, without their labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pytest_trt.models.shapes_data import Annotations, Objects

PAD = 114 / 255


class CocoDataError(ValueError):
    """The COCO annotations or images are unusable; the message names the file and what to do."""


def parse_spec(spec: str) -> tuple[Path, Path]:
    """``coco:ANNOTATIONS.json:IMAGES_DIR`` -> the two paths, checked to exist."""
    parts = spec.split(":", 2)
    if len(parts) != 3 or parts[0] != "coco" or not parts[1] or not parts[2]:
        raise CocoDataError(
            f"--trt-dataset {spec!r}: expected coco:ANNOTATIONS.json:IMAGES_DIR (e.g. "
            "coco:instances_val2017.json:val2017)"
        )
    ann, images = Path(parts[1]), Path(parts[2])
    if not ann.is_file():
        raise CocoDataError(f"--trt-dataset: annotations file {ann} does not exist")
    if not images.is_dir():
        raise CocoDataError(f"--trt-dataset: images directory {images} does not exist")
    return ann, images


def _load(ann: Path) -> Any:
    import contextlib
    import io

    from faster_coco_eval import COCO

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(ann))
    except Exception as exc:  # a JSON or schema error: say which file
        raise CocoDataError(
            f"--trt-dataset: {ann} is not COCO annotations ({type(exc).__name__}: {exc})"
        ) from None


def _letterbox(im: np.ndarray, size: int) -> tuple[np.ndarray, float, int, int]:
    from PIL import Image

    h, w = im.shape[:2]
    r = size / max(h, w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    top, left = (size - nh) // 2, (size - nw) // 2
    out = np.full((size, size, 3), PAD, np.float32)
    out[top : top + nh, left : left + nw] = np.asarray(Image.fromarray(im).resize((nw, nh)), np.float32) / 255
    return out, r, top, left


def _mask(m: np.ndarray, r: float, top: int, left: int, size: int) -> np.ndarray:
    from PIL import Image

    h, w = m.shape
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    out = np.zeros((size, size), bool)
    small = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((nw, nh)), np.uint8) > 127
    out[top : top + nh, left : left + nw] = small
    return out


def load(
    spec: str, size: int, n: int, offset: int = 0, labelled: bool = True
) -> tuple[np.ndarray, Annotations | None, str]:
    """``n`` images from ``offset`` on ``[n, 3, size, size]``, their objects (when ``labelled``) and a
    source name."""
    from PIL import Image

    ann_path, images = parse_spec(spec)
    coco = _load(ann_path)
    cats = sorted(coco.getCatIds())
    index = {c: i for i, c in enumerate(cats)}
    ids = sorted(coco.getImgIds())[offset : offset + n]
    if not ids:
        raise CocoDataError(f"--trt-dataset: {ann_path} has no images from number {offset + 1} on")
    xs, objs = [], []
    for img_id in ids:
        info = coco.loadImgs(img_id)[0]
        path = images / info["file_name"]
        try:
            im = np.asarray(Image.open(path).convert("RGB"))
        except OSError as exc:
            raise CocoDataError(f"--trt-dataset: image {path} cannot be read ({exc})") from None
        x, r, top, left = _letterbox(im, size)
        xs.append(x.transpose(2, 0, 1))
        if not labelled:
            continue
        boxes, classes, masks = [], [], []
        for a in coco.loadAnns(coco.getAnnIds(imgIds=[img_id], iscrowd=False)):
            bx, by, bw, bh = a["bbox"]
            boxes.append([bx * r + left, by * r + top, (bx + bw) * r + left, (by + bh) * r + top])
            classes.append(index[a["category_id"]])
            masks.append(
                _mask(coco.annToMask(a), r, top, left, size)
                if a.get("segmentation")
                else np.zeros((size, size), bool)
            )
        objs.append(Objects.from_lists(boxes, classes, masks, (size, size)))
    source = f"coco:{ann_path.name}[{offset}:{offset + len(ids)}]"
    names = tuple(str(coco.loadCats(c)[0].get("name", c)) for c in cats)
    ann = Annotations(tuple(objs), (size, size), names, source) if labelled else None
    return np.stack(xs).astype(np.float32), ann, source


__all__ = ["CocoDataError", "load", "parse_spec"]
