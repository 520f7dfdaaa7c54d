"""The HCLD model: an encoder trunk over the features, two embedding heads (X_e, X_s), classifiers.

`trunk="shared"` (default): one encoder, whose pooled output feeds a Linear emotion embedding
head (X_e) and a Linear speaker embedding head (X_s) -- the paper's one `X_i = Encoder(x_i)` per
architecture (Sec. III-B). Every loss on X_e then also moves what X_s is computed from, which is
what lets ICLD, SupCon and L_Label change the speaker scores (Table II).
`trunk="separate"`: one encoder per embedding (each with its own head); the speaker encoder may
be another family (`speaker_backbone`). No printed loss couples the two then.
Widths come from a size preset (`TrialConfig.model_size`); the paper gives none, so "paper" is
our choice of a moderate size (docs/paper-notes.md), "tiny" is for CPU smoke runs and tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from hcld.config import BACKBONES, ModelSize, choices


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


assert set(SIZE_PRESETS) == set(choices(ModelSize)), "hcld.config.ModelSize lists the presets"


def size_preset(name: str) -> SizePreset:
    return SIZE_PRESETS[name]  # TrialConfig has checked the name


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


class LayerMix(nn.Module):
    """Learned softmax-weighted sum of L stacked layers: [B, T, L*D] -> [B, T, D].

    The input is what `--features ssl --layers ...` stores: L hidden states of one upstream
    concatenated along the last dim (each normalised on its own). SUPERB's featurizer (s3prl)
    mixes an upstream's layers the same way: one scalar per layer, softmax-normalised so the
    weights stay positive and sum to 1, initialised equal (zeros), so training starts from the
    plain average and `weights()` shows afterwards which layers the task used.
    """

    def __init__(self, n_layers: int, dim: int):
        super().__init__()
        if n_layers < 1 or dim < 1:
            raise ValueError(f"LayerMix needs n_layers >= 1 and dim >= 1, got {n_layers}, {dim}")
        self.n_layers, self.dim = n_layers, dim
        self.logits = nn.Parameter(torch.zeros(n_layers))

    def weights(self) -> torch.Tensor:
        """The mixing weights, [L], positive and summing to 1."""
        return torch.softmax(self.logits, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n_layers * self.dim:
            raise ValueError(f"LayerMix({self.n_layers}, {self.dim}) expects a last dim of "
                             f"{self.n_layers * self.dim}, got {x.shape[-1]}")
        chunks = x.unflatten(-1, (self.n_layers, self.dim))  # [..., L, D]
        return (chunks * self.weights().to(x.dtype)[:, None]).sum(dim=-2)


class CNNEncoder(nn.Module):
    """1-D convolutions over time (kernel 5, stride 2 each), then mean+max pooling over time."""

    def __init__(self, feat_dim: int, p: SizePreset):
        super().__init__()
        self.front = _Front(feat_dim, p.time_stride)
        blocks, channels = [], feat_dim
        for _ in range(p.layers + 1):
            conv = nn.Conv1d(channels, p.width, kernel_size=5, stride=2, padding=2)
            blocks += [conv, nn.GELU(), nn.Dropout(p.dropout)]
            channels = p.width
        self.convs = nn.Sequential(*blocks)
        self.pooled_dim = 2 * p.width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.convs(self.front(x).transpose(1, 2))  # [B, C, T']
        return torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)


class LSTMEncoder(nn.Module):
    """Bidirectional LSTM over time, mean pooling of its outputs."""

    def __init__(self, feat_dim: int, p: SizePreset):
        super().__init__()
        self.front = _Front(feat_dim, p.time_stride)
        self.lstm = nn.LSTM(
            feat_dim, p.width, num_layers=p.layers, batch_first=True, bidirectional=True,
            dropout=p.dropout if p.layers > 1 else 0.0,
        )
        self.pooled_dim = 2 * p.width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.front(x)
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # oneDNN has no bf16 LSTM on CPUs without AVX512-BF16 ("could not create a primitive
            # descriptor"): the recurrence runs in fp32 there, the rest of the model in bf16
            with torch.autocast("cpu", enabled=False):
                h, _ = self.lstm(x.float())
        else:
            h, _ = self.lstm(x)
        return h.mean(dim=1)


class TransformerEncoder(nn.Module):
    """Linear input projection + sinusoidal positions, pre-norm Transformer layers, mean pooling."""

    def __init__(self, feat_dim: int, p: SizePreset, max_len: int = 4096):
        super().__init__()
        self.front = _Front(feat_dim, p.time_stride)
        self.proj = nn.Linear(feat_dim, p.width)
        layer = nn.TransformerEncoderLayer(
            p.width, p.heads, dim_feedforward=2 * p.width, dropout=p.dropout, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, p.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(p.width)
        self.pooled_dim = p.width
        self.register_buffer("positions", _sinusoids(max_len, p.width), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(self.front(x))
        if h.shape[1] > self.positions.shape[0]:  # longer than ever seen: extend the table once
            self.positions = _sinusoids(h.shape[1], h.shape[2]).to(h.device)
        h = h + self.positions[: h.shape[1]]
        return self.norm(self.layers(h)).mean(dim=1)


def _sinusoids(length: int, dim: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


_ENCODERS = {"cnn": CNNEncoder, "lstm": LSTMEncoder, "transformer": TransformerEncoder}
assert set(_ENCODERS) == set(BACKBONES), "hcld.config.Backbone lists the encoders"


def build_encoder(backbone: str, feat_dim: int, preset: SizePreset) -> nn.Module:
    """An encoder mapping [B, T, feat_dim] to a pooled [B, encoder.pooled_dim]."""
    return _ENCODERS[backbone](feat_dim, preset)


class HCLDModel(nn.Module):
    """Trunk (one shared encoder, or one per embedding), embedding heads, classifiers, anchors.

    forward(features) -> {"xe", "emo_logits", and with the speaker branch "xs", "spk_logits",
    and with label anchors "anchors" (the label vectors as they meet X_e: through a learnable
    Linear, or through the fixed isometric embedding of `hcld.anchors.embed_isometrically`)}.
    With `n_layers` > 1 the features are L stacked upstream layers ([B, T, L*D], feat_dim = L*D)
    and a LayerMix in front turns them into one [B, T, D] for both encoders.
    """

    def __init__(
        self,
        *,
        feat_dim: int,
        n_speakers: int,
        n_emotions: int,
        backbone: str,
        trunk: str,
        speaker_backbone: str | None,
        model_size: str,
        embed_dim: int,
        speaker_branch: bool,
        label_anchors: torch.Tensor | None,  # [n_emotions, anchor_dim]
        anchor_projection: str,  # learned | fixed
        n_layers: int = 1,  # upstream layers stacked in the features (--features ssl --layers)
    ):
        super().__init__()
        # what rebuilds this model around saved weights (hcld.saved_model): JSON, the anchors by shape only
        self.arguments = {
            "feat_dim": feat_dim, "n_speakers": n_speakers, "n_emotions": n_emotions, "backbone": backbone,
            "trunk": trunk, "speaker_backbone": speaker_backbone, "model_size": model_size,
            "embed_dim": embed_dim, "speaker_branch": speaker_branch, "anchor_projection": anchor_projection,
            "n_layers": n_layers, "anchor_shape": None if label_anchors is None else list(label_anchors.shape),
        }
        preset = size_preset(model_size)
        self.layer_mix = None
        if n_layers > 1:
            if feat_dim % n_layers:
                raise ValueError(f"features of {feat_dim} dims cannot hold {n_layers} equal layers")
            feat_dim //= n_layers
            self.layer_mix = LayerMix(n_layers, feat_dim)
        self.emo_encoder = build_encoder(backbone, feat_dim, preset)
        self.emo_embed = nn.Linear(self.emo_encoder.pooled_dim, embed_dim)
        self.emo_head = nn.Linear(embed_dim, n_emotions)
        self.spk_encoder = self.spk_embed = self.spk_head = None
        if speaker_branch:
            if trunk == "shared":
                self.spk_encoder = self.emo_encoder  # the same module: one trunk, two heads
            else:
                self.spk_encoder = build_encoder(speaker_backbone or backbone, feat_dim, preset)
            self.spk_embed = nn.Linear(self.spk_encoder.pooled_dim, embed_dim)
            self.spk_head = nn.Linear(embed_dim, n_speakers)
        self.anchor_proj = None
        if label_anchors is not None:
            if anchor_projection == "learned":
                self.register_buffer("label_anchors", label_anchors.float().clone())
                self.anchor_proj = nn.Linear(label_anchors.shape[1], embed_dim)
            else:
                from hcld.anchors import embed_isometrically

                self.register_buffer("label_anchors", embed_isometrically(label_anchors.float(), embed_dim))

    @classmethod
    def from_arguments(cls, arguments: dict) -> HCLDModel:
        """An untrained model of `arguments` (HCLDModel.arguments), ready for load_state_dict: the label
        anchors are zeros of the saved shape, which the state dict overwrites."""
        args = dict(arguments)
        shape = args.pop("anchor_shape")
        return cls(**args, label_anchors=None if shape is None else torch.zeros(shape))

    @property
    def shares_trunk(self) -> bool:
        return self.spk_encoder is self.emo_encoder

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.layer_mix is not None:
            features = self.layer_mix(features)
        pooled = self.emo_encoder(features)
        xe = self.emo_embed(pooled)
        out = {"xe": xe, "emo_logits": self.emo_head(xe)}
        if self.spk_encoder is not None:
            spk_pooled = pooled if self.shares_trunk else self.spk_encoder(features)
            xs = self.spk_embed(spk_pooled)
            out["xs"], out["spk_logits"] = xs, self.spk_head(xs)
        if hasattr(self, "label_anchors"):
            anchors = self.label_anchors
            out["anchors"] = self.anchor_proj(anchors) if self.anchor_proj is not None else anchors
        return out
