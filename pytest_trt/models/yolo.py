"""YOLOv8 networks of our own (detection, instance segmentation, classification), written from the
published architecture so the zoo needs neither the ``ultralytics`` package (AGPL-3.0) nor a download.

Parameter names follow the published checkpoints' layout (``model.<index>.<part>``), so a state dict
taken from one (``model.state_dict()`` of a loaded ultralytics model) loads with ``--trt-weights file:``.
Scales are the published n/s/m/l/x (depth, width, channel cap); ``shapes`` is a much smaller scale for
the detector trained in the package (``pytest_trt.models.detector_training``).

In evaluation mode a detector returns what the published export does: ``[B, 4 + nc, A]`` with boxes as
centre x, centre y, width, height in input pixels and class scores after the sigmoid, for A anchor
points over strides 8, 16 and 32; a segmenter adds 32 mask coefficients per anchor to that tensor and
returns the prototype masks ``[B, 32, H/4, W/4]`` as a second output.  Decoding (thresholds, NMS, masks)
is post-processing: :mod:`pytest_trt.quality.detection`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: name -> (depth multiple, width multiple, channel cap)
SCALES: dict[str, tuple[float, float, int]] = {
    "n": (0.33, 0.25, 1024),
    "s": (0.33, 0.50, 1024),
    "m": (0.67, 0.75, 768),
    "l": (1.00, 1.00, 512),
    "x": (1.00, 1.25, 512),
    "shapes": (0.33, 0.125, 256),
}
STRIDES = (8, 16, 32)
REG_MAX = 16  # box sides are distributions over 16 bins (distribution focal loss)
MASK_COEFFS = 32


def _ch(c: int, width: float, cap: int) -> int:
    return int(math.ceil(min(c, cap) * width / 8) * 8)


def _n(n: int, depth: float) -> int:
    return max(round(n * depth), 1) if n > 1 else n


class Conv(nn.Module):
    """Convolution, batch norm (eps 1e-3, as published), SiLU."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1: int, c2: int, shortcut: bool) -> None:
        super().__init__()
        self.cv1 = Conv(c1, c2, 3)
        self.cv2 = Conv(c2, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """Split in two halves, a chain of bottlenecks on one, every intermediate concatenated."""

    def __init__(self, c1: int, c2: int, n: int, shortcut: bool) -> None:
        super().__init__()
        self.c = c2 // 2
        self.cv1 = Conv(c1, 2 * self.c)
        self.cv2 = Conv((2 + n) * self.c, c2)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_)
        self.cv2 = Conv(4 * c_, c2)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class DFL(nn.Module):
    """Expected value of each side's 16-bin distribution (a fixed 1x1 convolution over the bins)."""

    def __init__(self, bins: int = REG_MAX) -> None:
        super().__init__()
        self.conv = nn.Conv2d(bins, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(bins, dtype=torch.float32).view(1, bins, 1, 1)
        self.bins = bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.bins, a).transpose(2, 1).softmax(1)).view(b, 4, a)


def anchor_points(feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres of every level ``[A, 2]`` (in cells) and each one's stride ``[A, 1]``."""
    points, strides = [], []
    for f, s in zip(feats, STRIDES, strict=True):
        h, w = f.shape[2], f.shape[3]
        sy = torch.arange(h, device=f.device, dtype=f.dtype) + 0.5
        sx = torch.arange(w, device=f.device, dtype=f.dtype) + 0.5
        gy, gx = torch.meshgrid(sy, sx, indexing="ij")
        points.append(torch.stack((gx, gy), -1).view(-1, 2))
        strides.append(torch.full((h * w, 1), float(s), device=f.device, dtype=f.dtype))
    return torch.cat(points), torch.cat(strides)


def box_region(boxes: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Which pixel centres of an ``hw`` grid lie inside each box ``[K, 4]`` (x1, y1, x2, y2 in that
    grid's pixels): ``[K, H, W]`` bool, to cut masks to their boxes."""
    ys = torch.arange(hw[0], device=boxes.device, dtype=boxes.dtype)[None, :, None] + 0.5
    xs = torch.arange(hw[1], device=boxes.device, dtype=boxes.dtype)[None, None, :] + 0.5
    x1, y1, x2, y2 = (boxes[:, i, None, None] for i in range(4))
    return (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)


class Detect(nn.Module):
    def __init__(self, nc: int, ch: tuple[int, ...]) -> None:
        super().__init__()
        self.nc = nc
        c2 = max(16, ch[0] // 4, 4 * REG_MAX)
        c3 = max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * REG_MAX, 1)) for x in ch
        )
        self.cv3 = nn.ModuleList(
            nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch
        )
        self.dfl = DFL()
        self._init_bias()

    def _init_bias(self) -> None:
        # the published prior: box logits 1, class logits for ~5 objects per 640 px image
        for box, cls, s in zip(self.cv2, self.cv3, STRIDES, strict=True):
            box_out, cls_out = list(box.children())[-1], list(cls.children())[-1]
            assert isinstance(box_out, nn.Conv2d) and isinstance(cls_out, nn.Conv2d)
            assert box_out.bias is not None and cls_out.bias is not None
            box_out.bias.data[:] = 1.0
            cls_out.bias.data[: self.nc] = math.log(5 / self.nc / (640 / s) ** 2)

    def raw(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Box distributions ``[B, 64, A]`` and class logits ``[B, nc, A]`` (what training uses)."""
        b = feats[0].shape[0]
        box = torch.cat([m(f).view(b, 4 * REG_MAX, -1) for m, f in zip(self.cv2, feats, strict=True)], 2)
        cls = torch.cat([m(f).view(b, self.nc, -1) for m, f in zip(self.cv3, feats, strict=True)], 2)
        return box, cls

    def decode(self, feats: list[torch.Tensor], box: torch.Tensor) -> torch.Tensor:
        """Box distributions to centre-size boxes in pixels ``[B, 4, A]``."""
        points, strides = anchor_points(feats)
        lt, rb = self.dfl(box).chunk(2, 1)
        p = points.transpose(0, 1).unsqueeze(0)
        x1y1, x2y2 = p - lt, p + rb
        return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * strides.transpose(0, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        box, cls = self.raw(feats)
        return torch.cat((self.decode(feats, box), cls.sigmoid()), 1)


class Proto(nn.Module):
    """Prototype masks at stride 4 from the stride-8 features."""

    def __init__(self, c1: int, c_: int, c2: int = MASK_COEFFS) -> None:
        super().__init__()
        self.cv1 = Conv(c1, c_, 3)
        self.upsample = nn.ConvTranspose2d(c_, c_, 2, 2, 0, bias=True)
        self.cv2 = Conv(c_, c_, 3)
        self.cv3 = Conv(c_, c2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(self.cv2(self.upsample(self.cv1(x))))


class Segment(Detect):
    def __init__(self, nc: int, protos: int, ch: tuple[int, ...]) -> None:
        super().__init__(nc, ch)
        self.proto = Proto(ch[0], protos)
        c4 = max(ch[0] // 4, MASK_COEFFS)
        self.cv4 = nn.ModuleList(
            nn.Sequential(Conv(x, c4, 3), Conv(c4, c4, 3), nn.Conv2d(c4, MASK_COEFFS, 1)) for x in ch
        )

    def coefficients(self, feats: list[torch.Tensor]) -> torch.Tensor:
        b = feats[0].shape[0]
        return torch.cat([m(f).view(b, MASK_COEFFS, -1) for m, f in zip(self.cv4, feats, strict=True)], 2)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        det = super().forward(feats)
        return torch.cat((det, self.coefficients(feats)), 1), self.proto(feats[0])


class Classify(nn.Module):
    def __init__(self, c1: int, nc: int) -> None:
        super().__init__()
        self.conv = Conv(c1, 1280)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.0)
        self.linear = nn.Linear(1280, nc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.drop(self.pool(self.conv(x)).flatten(1))).softmax(1)


def _backbone(depth: float, width: float, cap: int, sppf: bool) -> tuple[list[nn.Module], list[int]]:
    """Layers 0-8 (and the SPPF, layer 9, for detectors); the output channels of each."""
    c = [_ch(x, width, cap) for x in (64, 128, 256, 512, 1024)]
    layers: list[nn.Module] = [
        Conv(3, c[0], 3, 2),
        Conv(c[0], c[1], 3, 2),
        C2f(c[1], c[1], _n(3, depth), True),
        Conv(c[1], c[2], 3, 2),
        C2f(c[2], c[2], _n(6, depth), True),
        Conv(c[2], c[3], 3, 2),
        C2f(c[3], c[3], _n(6, depth), True),
        Conv(c[3], c[4], 3, 2),
        C2f(c[4], c[4], _n(3, depth), True),
    ]
    outs = [c[0], c[1], c[1], c[2], c[2], c[3], c[3], c[4], c[4]]
    if sppf:
        layers.append(SPPF(c[4], c[4]))
        outs.append(c[4])
    return layers, outs


class YOLOv8(nn.Module):
    """YOLOv8 detector (``task="detect"``) or instance segmenter (``task="segment"``)."""

    def __init__(self, scale: str = "n", nc: int = 80, task: str = "detect") -> None:
        super().__init__()
        if task not in ("detect", "segment"):
            raise ValueError(f"YOLOv8 task {task!r}: detect or segment (classify is YOLOv8Classifier)")
        depth, width, cap = SCALES[scale]
        layers, c = _backbone(depth, width, cap, sppf=True)
        n = _n(3, depth)
        c512, c256 = _ch(512, width, cap), _ch(256, width, cap)
        up = nn.Upsample(scale_factor=2.0, mode="nearest")
        layers += [
            up,  # 10
            nn.Identity(),  # 11: concat with layer 6
            C2f(c[9] + c[6], c512, n, False),  # 12
            nn.Upsample(scale_factor=2.0, mode="nearest"),  # 13
            nn.Identity(),  # 14: concat with layer 4
            C2f(c512 + c[4], c256, n, False),  # 15: P3
            Conv(c256, c256, 3, 2),  # 16
            nn.Identity(),  # 17: concat with layer 12
            C2f(c256 + c512, c512, n, False),  # 18: P4
            Conv(c512, c512, 3, 2),  # 19
            nn.Identity(),  # 20: concat with layer 9
            C2f(c512 + c[9], c[9], n, False),  # 21: P5
        ]
        ch = (c256, c512, c[9])
        head: nn.Module = Segment(nc, _ch(256, width, cap), ch) if task == "segment" else Detect(nc, ch)
        layers.append(head)  # 22
        self.model = nn.ModuleList(layers)
        self.task, self.nc = task, nc

    @property
    def head(self) -> Detect:
        h = self.model[22]
        assert isinstance(h, Detect)
        return h

    @property
    def segment_head(self) -> Segment:
        h = self.model[22]
        if not isinstance(h, Segment):
            raise TypeError("this YOLOv8 is a detector: it has no mask head")
        return h

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The stride 8, 16 and 32 features the head reads."""
        m = self.model
        y: dict[int, torch.Tensor] = {}
        for i in range(10):
            x = m[i](x)
            y[i] = x
        x = m[12](torch.cat((m[10](x), y[6]), 1))
        y[12] = x
        p3 = m[15](torch.cat((m[13](x), y[4]), 1))
        p4 = m[18](torch.cat((m[16](p3), y[12]), 1))
        p5 = m[21](torch.cat((m[19](p4), y[9]), 1))
        return [p3, p4, p5]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        out: torch.Tensor | tuple[torch.Tensor, torch.Tensor] = self.head(self.features(x))
        return out


class YOLOv8Classifier(nn.Module):
    """YOLOv8 classifier (``yolov8n-cls``): the backbone without SPPF and a 1280-wide head; softmax out."""

    def __init__(self, scale: str = "n", nc: int = 1000) -> None:
        super().__init__()
        depth, width, cap = SCALES[scale]
        layers, c = _backbone(depth, width, cap, sppf=False)
        layers.append(Classify(c[-1], nc))
        self.model = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for m in self.model:
            x = m(x)
        return x


__all__ = ["SCALES", "STRIDES", "YOLOv8", "YOLOv8Classifier", "anchor_points", "box_region"]
