"""Inputs for evaluation and calibration: seeded synthetic tensors, ImageFolder datasets, sklearn digits.

Evaluation and calibration samples never overlap: calibration draws from a different seed (synthetic)
or from the part of the dataset after the evaluation samples, so int8 recipes are not calibrated on
the very inputs they are judged on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pytest_trt.models.photographs import PHOTOS, photo_images
from pytest_trt.models.shapes_data import Annotations
from pytest_trt.models.signature import InputSpec, Shape

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


class DatasetError(ValueError):
    """A dataset path or file is unusable; the message names it and says what to do."""


@dataclass(frozen=True)
class Samples:
    """N samples stacked on axis 0, with labels when the source has them.

    ``x`` is the model's first input; ``more`` holds its other inputs in the model's input order
    (positional, as the ONNX graph and the module's ``forward`` take them).
    """

    x: np.ndarray
    labels: np.ndarray | None
    source: str
    more: tuple[np.ndarray, ...] = ()
    annotations: Annotations | None = None  # objects per image (detection, instance segmentation)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        return (self.x, *self.more)

    def take(self, start: int, stop: int, pad_to: int | None = None) -> tuple[np.ndarray, ...]:
        """Samples ``start:stop`` of every input; ``pad_to`` repeats the last one (static batches)."""
        out = []
        for a in self.arrays:
            chunk = a[start:stop]
            if pad_to is not None and len(chunk) < pad_to:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad_to - len(chunk), axis=0)])
            out.append(chunk)
        return tuple(out)

    def cycled(self, n: int) -> tuple[np.ndarray, ...]:
        """Exactly ``n`` samples of every input, cycling through the set (a timing batch)."""
        reps = -(-n // len(self))
        return tuple(np.concatenate([a] * reps)[:n] for a in self.arrays)

    def with_arrays(self, arrays: tuple[np.ndarray, ...]) -> Samples:
        return Samples(arrays[0], self.labels, self.source, tuple(arrays[1:]), self.annotations)

    def digest(self) -> str:
        h = hashlib.sha256()
        for a in self.arrays:
            h.update(np.ascontiguousarray(a).tobytes())
        if self.labels is not None:
            h.update(np.ascontiguousarray(self.labels).tobytes())
        return h.hexdigest()[:16]


def synthetic(shape: tuple[int, ...], n: int, seed: int, vocab: int | None = None) -> Samples:
    """Seeded standard-normal inputs (the scale of normalised images), or token ids for text models."""
    rng = np.random.default_rng(seed)
    if vocab:
        ids = rng.integers(1000, vocab, (n, *shape), dtype=np.int64)
        ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP], as a tokenizer would frame a sentence
        return Samples(ids, None, f"synthetic-tokens(seed={seed})")
    return Samples(rng.standard_normal((n, *shape), dtype=np.float32), None, f"synthetic(seed={seed})")


def synthetic_inputs(inputs: Sequence[InputSpec], shapes: Sequence[Shape], n: int, seed: int) -> Samples:
    """Seeded synthetic values for every input (each drawn as its dtype and range say)."""
    rng = np.random.default_rng(seed)
    arrays = [inp.draw(n, rng, shape) for inp, shape in zip(inputs, shapes, strict=True)]
    return Samples(arrays[0], None, f"synthetic(seed={seed})", tuple(arrays[1:]))


def complete(first: Samples, inputs: Sequence[InputSpec], shapes: Sequence[Shape], seed: int) -> Samples:
    """``first`` (the first input's samples) joined by seeded synthetic values of the other inputs."""
    if len(inputs) < 2:
        return first
    rng = np.random.default_rng(seed + 1)
    more = tuple(inp.draw(len(first), rng, shape) for inp, shape in zip(inputs[1:], shapes[1:], strict=True))
    return Samples(first.x, first.labels, first.source + "+synthetic", more, first.annotations)


def load_image_folder(root: Path | str, size: int, limit: int, offset: int = 0) -> Samples:
    """An ImageFolder tree (``root/<class>/<image>``, ImageNet validation layout) with the torchvision
    classification preprocessing: resize to ``size*256/224``, centre crop ``size``, ImageNet normalise.
    Classes are sorted names, so labels match torchvision's ImageNet indices for the standard layout.
    """
    from PIL import Image, UnidentifiedImageError
    from torchvision import transforms

    path = Path(root).expanduser()
    if not path.exists():
        raise DatasetError(f"--trt-dataset {path}: no such directory; pass an ImageFolder root")
    if not path.is_dir():
        raise DatasetError(f"--trt-dataset {path}: not a directory; pass an ImageFolder root")
    classes = sorted(d.name for d in path.iterdir() if d.is_dir())
    ranked: list[tuple[int, int, Path]] = []
    for ci, c in enumerate(classes):
        imgs = sorted(f for f in (path / c).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        ranked.extend((rank, ci, f) for rank, f in enumerate(imgs))
    if not ranked:
        raise DatasetError(
            f"--trt-dataset {path}: no images found; expected {path}/<class>/<image> "
            f"with suffixes {', '.join(IMAGE_SUFFIXES)}"
        )
    # Interleave classes so a small limit still covers many classes, deterministically.
    ranked.sort(key=lambda t: (t[0], t[1]))
    files = [(f, ci) for _, ci, f in ranked]
    chosen = files[offset : offset + limit]
    if not chosen:
        raise DatasetError(f"--trt-dataset {path}: only {len(files)} images, none left after offset {offset}")
    tf = transforms.Compose(
        [
            transforms.Resize(round(size * 256 / 224)),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    xs, ys = [], []
    for f, ci in chosen:
        try:
            with Image.open(f) as im:
                xs.append(tf(im.convert("RGB")).numpy())
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"--trt-dataset: cannot read image {f} ({exc}); remove or replace it") from exc
        ys.append(ci)
    return Samples(np.stack(xs).astype(np.float32), np.asarray(ys, dtype=np.int64), f"imagefolder:{path}")


# scikit-image's sample photographs that ship inside the package (no download): real scenes for
# ImageNet classifiers, whose fp32 predictions serve as reference labels.
def photos(shape: tuple[int, ...], n: int, seed: int, views: str = "eval") -> Samples:
    """Real photographs with ImageNet preprocessing, ``n`` views of scikit-image's sample images.

    ``eval``: each photo resized (shorter side size*256/224) and centre-cropped, as torchvision evaluates
    ImageNet, then seeded random crops and flips of them; ``calib``: only random crops (another seed),
    so int8 calibration never sees the evaluation views.
    """
    from PIL import Image
    from torchvision import transforms

    size = shape[-1]
    norm = transforms.Compose([transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    centre = transforms.Compose([transforms.Resize(round(size * 256 / 224)), transforms.CenterCrop(size)])
    rng = np.random.default_rng(seed)
    images = photo_images()
    xs = []
    for k in range(n):
        _, im = images[k % len(images)]
        pil = Image.fromarray(im)
        if views == "eval" and k < len(images):
            xs.append(norm(centre(pil)).numpy())
            continue
        w, h = pil.size
        side = int(min(w, h) * rng.uniform(0.45, 1.0))
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = pil.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        xs.append(norm(crop).numpy())
    return Samples(np.stack(xs).astype(np.float32), None, f"skimage-photos:{views}(seed={seed},n={n})")


def digits_split(seed: int = 0) -> tuple[Samples, Samples]:
    """scikit-learn's digits (1797 real 8x8 images, 10 labels): a fixed 70/30 train/test split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0 - 0.5) / 0.5
    x = x[:, None, :, :]
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.7 * len(y))
    tr, te = order[:cut], order[cut:]
    return Samples(x[tr], y[tr], "sklearn-digits:train"), Samples(x[te], y[te], "sklearn-digits:test")


def train_digits_classifier(model: nn.Module, seed: int = 0, epochs: int = 60) -> float:
    """Full-batch Adam on the digits training split; deterministic on CPU; returns train accuracy."""
    train, _ = digits_split(seed)
    torch.manual_seed(seed)
    x = torch.from_numpy(train.x)
    y = torch.from_numpy(train.labels if train.labels is not None else np.zeros(0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    with torch.random.fork_rng():
        for _ in range(epochs):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


# mAP over a few objects moves in steps of several points: small detectors get a larger evaluation
# set (at 640 px one image's masks alone take 40 MB, so large inputs keep --trt-samples)
SHAPES_EVAL = 64


def shapes(shape: tuple[int, ...], n: int, seed: int, labelled: bool = True) -> Samples:
    """Generated shapes on photographs (:mod:`.shapes_data`), RGB in [0, 1] as YOLO models take them;
    with their objects as annotations when ``labelled``."""
    from pytest_trt.models import shapes_data

    if shape[-1] != shape[-2]:
        raise DatasetError(f"shapes data is square; got an input of {shape[-2]}x{shape[-1]}")
    x, ann = shapes_data.make(n, shape[-1], seed)
    return Samples(
        x, None, ann.source if labelled else ann.source + ":images", annotations=ann if labelled else None
    )


def coco(spec: str, shape: tuple[int, ...], n: int, offset: int = 0, labelled: bool = True) -> Samples:
    """A user's COCO data (:mod:`.coco_data`), letterboxed to the input's side; calibration takes the
    images after the evaluation ones (all of them again where there are too few, said in the source)."""
    from pytest_trt.models import coco_data

    try:
        x, ann, source = coco_data.load(spec, shape[-1], n, offset, labelled)
    except coco_data.CocoDataError as exc:
        if offset and "has no images" in str(exc):
            x, ann, source = coco_data.load(spec, shape[-1], n, 0, labelled)
            source += "(overlaps eval)"
        else:
            raise DatasetError(str(exc)) from None
    return Samples(x, None, source, annotations=ann)


@dataclass(frozen=True)
class DataConfig:
    """Where evaluation and calibration samples come from (set by --trt-dataset and friends)."""

    dataset: str | None = None  # None: synthetic; "digits": sklearn digits; else an ImageFolder path
    eval_samples: int = 16
    calib_samples: int = 32
    seed: int = 0


def eval_samples(
    cfg: DataConfig, shape: tuple[int, ...], data: str | None = None, vocab: int | None = None
) -> Samples:
    """Evaluation inputs: ``data`` is the model's own data ("digits", "photos") unless --trt-dataset is set."""
    if data == "digits":
        _, test = digits_split(cfg.seed)  # the whole test split (540 images): cheap, and accuracy needs it
        n = len(test)
        return Samples(test.x[:n], test.labels[:n] if test.labels is not None else None, test.source)
    if cfg.dataset and cfg.dataset.startswith("coco:"):
        return coco(cfg.dataset, shape, cfg.eval_samples)
    if cfg.dataset and cfg.dataset != "digits" and len(shape) == 3:
        return load_image_folder(cfg.dataset, shape[-1], cfg.eval_samples)
    if data == "photos":
        # Every photograph at least twice (centre crop + a random view): top-1 agreement needs samples.
        return photos(shape, max(cfg.eval_samples, 2 * len(PHOTOS)), cfg.seed)
    if data in ("shapes", "shapes-images"):
        n = max(cfg.eval_samples, SHAPES_EVAL) if shape[-1] <= 160 else cfg.eval_samples
        return shapes(shape, n, cfg.seed, labelled=data == "shapes")
    return synthetic(shape, cfg.eval_samples, cfg.seed, vocab)


def calibration_samples(
    cfg: DataConfig, shape: tuple[int, ...], data: str | None = None, vocab: int | None = None
) -> Samples:
    if data == "digits":
        train, _ = digits_split(cfg.seed)
        return Samples(train.x[: cfg.calib_samples], None, "sklearn-digits:train")
    if cfg.dataset and cfg.dataset.startswith("coco:"):
        return coco(cfg.dataset, shape, cfg.calib_samples, offset=cfg.eval_samples, labelled=False)
    if cfg.dataset and cfg.dataset != "digits" and len(shape) == 3:
        try:
            return load_image_folder(cfg.dataset, shape[-1], cfg.calib_samples, offset=cfg.eval_samples)
        except DatasetError:
            # Small dataset: calibrate on the evaluation images rather than not at all; the source says so.
            s = load_image_folder(cfg.dataset, shape[-1], cfg.calib_samples)
            return Samples(s.x, None, s.source + "(overlaps eval)")
    if data == "photos":
        return photos(shape, cfg.calib_samples, cfg.seed + 10_007, views="calib")
    if data in ("shapes", "shapes-images"):
        return shapes(shape, cfg.calib_samples, cfg.seed + 10_007, labelled=False)
    return synthetic(shape, cfg.calib_samples, cfg.seed + 10_007, vocab)
