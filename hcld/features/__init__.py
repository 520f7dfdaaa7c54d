"""Frame-level features of every utterance in a manifest: the extractor registry and the entry point.

An extractor turns a batch of fixed-length clips (7.5 s at 16 kHz, zero-padded) into [B, T, D]
float32 frames. Its `config` is plain JSON and goes into the feature-store key, so anything that
changes the numbers (window, layer, normalisation, checkpoint hash) must be in it.

Normalisation ("the features are normalized", paper IV-A) is the same for every extractor and
always per utterance, over the frames that cover real audio; frames that only cover zero padding
are then set to 0 (the utterance mean), so padding carries no signal:
- `scalar` (default): one mean and one standard deviation over all real frames and dimensions.
  It removes level and gain but keeps the shape of the frame vectors, where speaker timbre lives
  (the speaker branch needs it);
- `utterance`: per-dimension mean 0 / variance 1 (CMVN). It also erases the utterance's average
  spectrum, i.e. most speaker identity: on the synthetic corpus the speaker task collapses to
  near chance with it (docs/paper-notes.md);
- `none`: raw extractor output.

Extractor modules are imported lazily: reading a stored feature set needs numpy only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hcld.errors import DataError
from hcld.labels import CLIP_SECONDS, SAMPLE_RATE
from hcld.threads import torch_threads

if TYPE_CHECKING:
    import torch

    from hcld.features.store import FeatureSet

NORMALISATIONS = ("scalar", "utterance", "none")
DEFAULT_NORM = "scalar"

# name -> "module:class"; imported only when asked for (hubert pulls in torchaudio's model code).
EXTRACTORS: dict[str, str] = {
    "fbank": "hcld.features.fbank:FbankExtractor",
    "hubert": "hcld.features.hubert:HubertExtractor",
    "ssl": "hcld.features.ssl:SslExtractor",  # any local wav2vec2/HuBERT/WavLM/data2vec-audio folder
}


class Extractor:
    """Base class. Subclasses set `name`, `dim`, `config` and implement `frames` and `_compute`."""

    name: str = ""
    dim: int = 0
    batch_size: int = 16
    threads: int | None = None  # torch intra-op threads while computing; None keeps torch's setting
    sample_rate: int = SAMPLE_RATE
    clip_seconds: float = CLIP_SECONDS

    def __init__(self, *, norm: str = DEFAULT_NORM) -> None:
        if norm not in NORMALISATIONS:
            raise ValueError(f"unknown feature normalisation {norm!r}; choose one of {NORMALISATIONS}")
        self.norm = norm
        self.config: dict[str, Any] = {"norm": norm, "sample_rate": self.sample_rate, "clip_seconds": self.clip_seconds}

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))

    def frames(self, n_samples: int) -> int:
        """How many output frames `n_samples` of audio give (the padded clip gives T)."""
        raise NotImplementedError

    @property
    def n_frames(self) -> int:
        return self.frames(self.clip_samples)

    def _compute(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, clip_samples] float32 waves, [B] valid sample counts -> [B, n_frames, dim] float32."""
        raise NotImplementedError

    def __call__(self, waves: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        import torch

        with torch_threads(self.threads), torch.inference_mode():
            out = self._compute(torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32)),
                                torch.as_tensor(lengths, dtype=torch.long)).float().cpu().numpy()
        if out.shape[1:] != (self.n_frames, self.dim):
            raise RuntimeError(f"{self.name} gave frames of shape {out.shape[1:]}, "
                               f"expected {(self.n_frames, self.dim)}")
        valid = np.array([self.valid_frames(int(n)) for n in lengths])
        return self._normalise(out, valid)

    def _normalise(self, frames: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """The configured normalisation; an extractor whose dims are several stacked blocks
        (ssl with `layers`) overrides this to normalise each block on its own."""
        return frames if self.norm == "none" else normalise(frames, valid, per_dimension=self.norm == "utterance")

    def valid_frames(self, n_samples: int) -> int:
        """Frames that cover real audio: at least one, so a very short clip still has statistics."""
        return max(1, min(self.n_frames, self.frames(min(n_samples, self.clip_samples))))


def normalise(frames: np.ndarray, valid: np.ndarray, *, per_dimension: bool = False,
              eps: float = 1e-5) -> np.ndarray:
    """Per-utterance standardisation over the valid frames (per dimension, or one scalar pair);
    padded frames -> 0."""
    out = np.zeros_like(frames, dtype=np.float32)
    axis = 0 if per_dimension else None
    for i, n in enumerate(valid):
        x = frames[i, :n].astype(np.float64)
        out[i, :n] = (x - x.mean(axis=axis)) / np.sqrt(x.var(axis=axis) + eps)
    return out


def make_extractor(name: str, *, checkpoint: Path | None = None, **options: Any) -> Extractor:
    """Build an extractor by registry name; `checkpoint` is only meaningful for `hubert`.

    Other options go to the extractor as they are, e.g. `make_extractor("ssl", upstream=DIR, layers=(4, 8))`.
    """
    if name not in EXTRACTORS:
        raise DataError(f"unknown feature extractor {name!r}; choose one of {sorted(EXTRACTORS)}")
    module, cls = EXTRACTORS[name].split(":")
    factory = getattr(importlib.import_module(module), cls)
    if name == "hubert":
        return factory(checkpoint=checkpoint, **options)
    if checkpoint is not None:
        raise DataError(f"--checkpoint is only used by the hubert extractor, not {name!r}")
    return factory(**options)


def extract_features(manifest_path: Path, extractor: str, store_root: Path, *, checkpoint: Path | None = None,
                     progress: bool = True, batch_size: int | None = None,
                     log: Callable[[str], None] | None = None, **options: Any) -> FeatureSet:
    """Features of every manifest row, from the content-addressed store (computed once, then reused).

    `options` go to the extractor (e.g. layer=9 for hubert, num_mel_bins=40 for fbank) and into the key.
    """
    from hcld.features.store import extract_features as _extract

    return _extract(manifest_path, extractor, store_root, checkpoint=checkpoint, progress=progress,
                    batch_size=batch_size, log=log, **options)


__all__ = ["EXTRACTORS", "Extractor", "extract_features", "make_extractor", "normalise"]
