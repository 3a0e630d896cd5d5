"""Real photographs shipped with scikit-image: the evaluation images of the ImageNet classifiers and the
backgrounds of the generated detection data."""

from __future__ import annotations

import numpy as np


class PhotosUnavailable(ValueError):
    """scikit-image (and its sample photographs) is not installed; the message says what to install."""


PHOTOS = (
    "chelsea",
    "coffee",
    "astronaut",
    "rocket",
    "camera",
    "coins",
    "clock",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "brick",
    "grass",
    "gravel",
    "moon",
    "page",
    "text",
    "colorwheel",
    "logo",
)


def photo_images() -> list[tuple[str, np.ndarray]]:
    import skimage.data

    out = []
    for name in PHOTOS:
        try:
            im = np.asarray(getattr(skimage.data, name)())
        except Exception:  # a sample missing from this scikit-image is simply not used
            continue
        if im.dtype == bool:
            im = im.astype(np.uint8) * 255
        if im.ndim == 2:
            im = np.stack([im] * 3, axis=-1)
        out.append((name, np.ascontiguousarray(im[..., :3].astype(np.uint8))))
    if not out:
        raise PhotosUnavailable("scikit-image's sample photographs are missing: pip install scikit-image")
    return out


__all__ = ["PHOTOS", "PhotosUnavailable", "photo_images"]
