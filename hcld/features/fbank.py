"""Kaldi-style log mel filterbank: the CPU default extractor (no checkpoint, no download).

80 mel bins, 25 ms window, 20 ms hop. The 20 ms hop (rather than Kaldi's usual 10 ms) gives the
same frame rate as HuBERT, so a 7.5 s clip yields 374 frames with either extractor and the
downstream models see the same sequence length.
"""

from __future__ import annotations

import torch

from hcld.features import DEFAULT_NORM, Extractor


class FbankExtractor(Extractor):
    name = "fbank"
    batch_size = 32
    # Per-utterance FFTs on [374, 400] frames are too small to split across threads: with more
    # threads than idle cores, extraction runs an order of magnitude slower than with one.
    threads = 1

    def __init__(self, *, num_mel_bins: int = 80, frame_length_ms: float = 25.0, frame_shift_ms: float = 20.0,
                 norm: str = DEFAULT_NORM) -> None:
        super().__init__(norm=norm)
        self.dim = num_mel_bins
        self.window = int(round(self.sample_rate * frame_length_ms / 1000))
        self.hop = int(round(self.sample_rate * frame_shift_ms / 1000))
        self.config.update(num_mel_bins=num_mel_bins, frame_length_ms=frame_length_ms, frame_shift_ms=frame_shift_ms,
                           dither=0.0, impl="torchaudio.compliance.kaldi.fbank")

    def frames(self, n_samples: int) -> int:
        # Kaldi's snip_edges=True: only windows that fit entirely inside the signal.
        return 0 if n_samples < self.window else 1 + (n_samples - self.window) // self.hop

    def _compute(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        from torchaudio.compliance import kaldi

        c = self.config
        return torch.stack([
            kaldi.fbank(w.unsqueeze(0), num_mel_bins=self.dim, frame_length=c["frame_length_ms"],
                        frame_shift=c["frame_shift_ms"], dither=0.0, sample_frequency=self.sample_rate)
            for w in waves
        ])
