"""Frame counts of the wav2vec2-family CNN front end, shared by the hubert and ssl extractors.

wav2vec2, HuBERT, WavLM and data2vec-audio all start with a stack of unpadded 1-D convolutions.
How many frames an input gives, and the shortest input that gives one, follow from each layer's
(kernel, stride) alone, so both extractors compute them here from the pairs their model declares
(the count matches the models' own _get_feat_extract_output_lengths).
"""

from __future__ import annotations

from hcld.features import Extractor


class ConvStackExtractor(Extractor):
    """An extractor whose frames come out of a conv stack; a subclass sets `conv` from its model."""

    conv: list[tuple[int, int]]  # (kernel, stride) of each conv layer, input side first

    def frames(self, n_samples: int) -> int:
        """Output frames of the conv stack (what the model's _get_feat_extract_output_lengths gives)."""
        n = n_samples
        for kernel, stride in self.conv:
            n = 0 if n < kernel else (n - kernel) // stride + 1
        return n

    def min_samples(self) -> int:
        """Smallest input that yields one frame (the conv stack's receptive field)."""
        n = 1
        for kernel, stride in reversed(self.conv):
            n = (n - 1) * stride + kernel
        return n
