"""The dual-branch HCLD model: an emotion encoder -> X_e, a speaker encoder -> X_s, Linear heads.

Each encoder maps features [B, T, D] to one pooled embedding [B, embed_dim]. The two branches may
use different backbones (the paper's point: ICLD works at the instance level, so it does not need
twin architectures). Widths come from a size preset (`TrialConfig.model_size`); the paper gives
none, so "paper" is our choice of a moderate size (docs/paper-notes.md), "tiny" is for CPU smoke
runs and tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

BACKBONES = ("cnn", "lstm", "transformer")


@dataclass(frozen=True)
class SizePreset:
    width: int  # CNN channels / LSTM hidden size per direction / Transformer d_model
    layers: int
    heads: int  # Transformer attention heads
    dropout: float
    time_stride: int  # average-pool the input over time by this factor before the encoder


SIZE_PRESETS: dict[str, SizePreset] = {
    "paper": SizePreset(width=256, layers=2, heads=4, dropout=0.1, time_stride=1),
    "small": SizePreset(width=128, layers=2, heads=4, dropout=0.1, time_stride=2),
    "tiny": SizePreset(width=32, layers=1, heads=2, dropout=0.0, time_stride=4),
}


def size_preset(name: str) -> SizePreset:
    try:
        return SIZE_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model_size {name!r}; known: {sorted(SIZE_PRESETS)}") from None


class _Front(nn.Module):
    """Per-frame LayerNorm (the paper normalises its HuBERT features; also tames fbank scales),
    then optional average pooling over time to make long inputs cheap."""

    def __init__(self, feat_dim: int, time_stride: int):
        super().__init__()
        self.norm = nn.LayerNorm(feat_dim)
        self.time_stride = time_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D] -> [B, T', D]
        x = self.norm(x)
        if self.time_stride > 1 and x.shape[1] >= self.time_stride:
            x = nn.functional.avg_pool1d(x.transpose(1, 2), self.time_stride).transpose(1, 2)
        return x


class CNNEncoder(nn.Module):
    """1-D convolutions over time (kernel 5, stride 2 each), then mean+max pooling over time."""

    def __init__(self, feat_dim: int, embed_dim: int, p: SizePreset):
        super().__init__()
        self.front = _Front(feat_dim, p.time_stride)
        blocks, channels = [], feat_dim
        for _ in range(p.layers + 1):
            blocks += [nn.Conv1d(channels, p.width, kernel_size=5, stride=2, padding=2), nn.GELU(), nn.Dropout(p.dropout)]
            channels = p.width
        self.convs = nn.Sequential(*blocks)
        self.out = nn.Linear(2 * p.width, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(self.front(x).transpose(1, 2))  # [B, C, T']
        return self.out(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))


class LSTMEncoder(nn.Module):
    """Bidirectional LSTM over time, mean pooling of its outputs."""

    def __init__(self, feat_dim: int, embed_dim: int, p: SizePreset):
        super().__init__()
        self.front = _Front(feat_dim, p.time_stride)
        self.lstm = nn.LSTM(
            feat_dim, p.width, num_layers=p.layers, batch_first=True, bidirectional=True,
            dropout=p.dropout if p.layers > 1 else 0.0,
        )
        self.out = nn.Linear(2 * p.width, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.front(x))
        return self.out(h.mean(dim=1))


class TransformerEncoder(nn.Module):
    """Linear input projection + sinusoidal positions, pre-norm Transformer layers, mean pooling."""

    def __init__(self, feat_dim: int, embed_dim: int, p: SizePreset, max_len: int = 4096):
        super().__init__()
        self.front = _Front(feat_dim, p.time_stride)
        self.proj = nn.Linear(feat_dim, p.width)
        layer = nn.TransformerEncoderLayer(
            p.width, p.heads, dim_feedforward=2 * p.width, dropout=p.dropout, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, p.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(p.width)
        self.out = nn.Linear(p.width, embed_dim)
        self.register_buffer("positions", _sinusoids(max_len, p.width), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.front(x))
        if h.shape[1] > self.positions.shape[0]:  # longer than ever seen: extend the table once
            self.positions = _sinusoids(h.shape[1], h.shape[2]).to(h.device)
        h = h + self.positions[: h.shape[1]]
        return self.out(self.norm(self.layers(h)).mean(dim=1))


def _sinusoids(length: int, dim: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


_ENCODERS = {"cnn": CNNEncoder, "lstm": LSTMEncoder, "transformer": TransformerEncoder}


def build_encoder(backbone: str, feat_dim: int, embed_dim: int, preset: SizePreset) -> nn.Module:
    if backbone not in _ENCODERS:
        raise ValueError(f"unknown backbone {backbone!r}; known: {list(BACKBONES)}")
    return _ENCODERS[backbone](feat_dim, embed_dim, preset)


class HCLDModel(nn.Module):
    """Emotion branch (always), speaker branch (when the variant uses X_s), heads, anchor projection.

    forward(features) -> {"xe", "emo_logits", and with the speaker branch "xs", "spk_logits",
    and with label anchors "anchors" (the fixed label vectors through the learnable projection)}.
    """

    def __init__(
        self,
        *,
        feat_dim: int,
        n_speakers: int,
        n_emotions: int = 4,
        backbone: str = "cnn",
        speaker_backbone: str | None = None,
        model_size: str = "paper",
        embed_dim: int = 256,
        speaker_branch: bool = True,
        label_anchors: torch.Tensor | None = None,  # [n_emotions, anchor_dim], fixed
    ):
        super().__init__()
        preset = size_preset(model_size)
        self.emo_encoder = build_encoder(backbone, feat_dim, embed_dim, preset)
        self.emo_head = nn.Linear(embed_dim, n_emotions)
        self.spk_encoder = self.spk_head = None
        if speaker_branch:
            self.spk_encoder = build_encoder(speaker_backbone or backbone, feat_dim, embed_dim, preset)
            self.spk_head = nn.Linear(embed_dim, n_speakers)
        self.anchor_proj = None
        if label_anchors is not None:
            self.register_buffer("label_anchors", label_anchors.float().clone())
            self.anchor_proj = nn.Linear(label_anchors.shape[1], embed_dim)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        xe = self.emo_encoder(features)
        out = {"xe": xe, "emo_logits": self.emo_head(xe)}
        if self.spk_encoder is not None:
            xs = self.spk_encoder(features)
            out["xs"], out["spk_logits"] = xs, self.spk_head(xs)
        if self.anchor_proj is not None:
            out["anchors"] = self.anchor_proj(self.label_anchors)
        return out
