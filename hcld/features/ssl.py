"""Hidden states of a LOCAL self-supervised speech model (wav2vec2, HuBERT, WavLM, data2vec-audio).

`--upstream DIR` is a transformers model folder: config.json, the weights (model.safetensors or
pytorch_model.bin, possibly sharded) and usually preprocessor_config.json -- what
`model.save_pretrained(DIR)` + `feature_extractor.save_pretrained(DIR)` write, or a model folder
downloaded on a machine with network (e.g. microsoft/wavlm-base-plus). Nothing is ever
downloaded here (local_files_only=True) and a missing folder is an error, never a random model.

`layer` picks one entry of the model's `hidden_states` (0 = the CNN/projection output before the
first transformer layer, num_hidden_layers = the last layer, the default). `layers` takes several
and concatenates them along the feature dimension, so one store entry holds [N, T, L*D] and a
model can learn how to mix them (hcld.models.LayerMix, SUPERB's weighted sum). Each layer is
normalised on its own, per utterance: layers differ in scale by an order of magnitude, and one
mean/std over the concatenation would let the loudest layer dominate.

Padding. The clip is zero-padded to 7.5 s. The feature extractor's waveform normalisation
(do_normalize: zero mean, unit variance) uses the valid samples only, so the padding does not
change an utterance's scale. The model gets an attention_mask only when its feature extractor
says `return_attention_mask=True` (data2vec-audio, wav2vec2-large-lv60 style, with per-frame
LayerNorm in the CNN). Models with `return_attention_mask=False` (wav2vec2-base, hubert-base,
wavlm-base(-plus): GroupNorm over the whole time axis in the first conv layer) were pre-trained
on unpadded batches without a mask; transformers' docs warn that a mask degrades them, so they
see the zero-padded clip as it is, as in their standard batched inference. Frames that only
cover padding are set to 0 afterwards in both cases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hcld.errors import DataError, MissingAssetError
from hcld.features import DEFAULT_NORM
from hcld.features.conv_stack import ConvStackExtractor
from hcld.fileio import file_sha256, json_hash

MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")
WEIGHT_PATTERNS = ("model.safetensors", "model-*.safetensors", "model.safetensors.index.json",
                   "pytorch_model.bin", "pytorch_model-*.bin", "pytorch_model.bin.index.json")

UPSTREAM_HELP = (
    "--upstream must be a local transformers model folder with config.json, the weights "
    "(model.safetensors or pytorch_model.bin) and preferably preprocessor_config.json: the output of "
    "`model.save_pretrained(DIR)` and `feature_extractor.save_pretrained(DIR)`, or a model folder such as "
    "microsoft/wavlm-base-plus, facebook/hubert-base-ls960 or facebook/wav2vec2-base downloaded on a machine "
    "with network (e.g. `huggingface-cli download microsoft/wavlm-base-plus --local-dir DIR`) and copied here. "
    f"Supported model types: {', '.join(MODEL_TYPES)}. Nothing is downloaded automatically."
)


def weight_files(folder: Path) -> list[Path]:
    """The files that hold the model's weights (one file, or the shards and their index)."""
    found = {p for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern) if p.is_file()}
    return sorted(found)


def check_upstream(upstream: Path | str | None) -> Path:
    """The folder, if it looks like a saved transformers model; MissingAssetError saying what to put there."""
    if upstream is None:
        raise MissingAssetError(f"The ssl extractor needs an upstream model folder (--upstream DIR). {UPSTREAM_HELP}")
    folder = Path(upstream)
    if not folder.is_dir():
        raise MissingAssetError(f"upstream folder {folder} does not exist. {UPSTREAM_HELP}")
    if not (folder / "config.json").is_file():
        raise MissingAssetError(f"upstream folder {folder} has no config.json. {UPSTREAM_HELP}")
    if not weight_files(folder):
        raise MissingAssetError(f"upstream folder {folder} has no model.safetensors or pytorch_model.bin. "
                                f"{UPSTREAM_HELP}")
    return folder


def upstream_sha256(folder: Path) -> str:
    """One hash of config.json and the weight files' contents: the key follows the model, not its path."""
    files = [folder / "config.json", *weight_files(folder)]
    return json_hash({p.name: file_sha256(p) for p in files})


def load_upstream(folder: Path):
    """(model in eval mode, float32; feature extractor; where the feature extractor came from)."""
    from transformers import AutoFeatureExtractor, AutoModel, Wav2Vec2FeatureExtractor

    try:
        model = AutoModel.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:  # unknown model type, unreadable or mismatched weights
        raise DataError(f"upstream folder {folder} cannot be loaded by transformers.AutoModel ({exc}). "
                        f"{UPSTREAM_HELP}") from exc
    if model.config.model_type not in MODEL_TYPES:
        raise DataError(f"upstream folder {folder} holds a {model.config.model_type!r} model; the ssl extractor "
                        f"supports {', '.join(MODEL_TYPES)}")
    if (folder / "preprocessor_config.json").is_file():
        feature_extractor = AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
        source = "preprocessor_config.json"
    else:
        # wav2vec2-family checkpoints saved without their processor: transformers' defaults are
        # the base models' (16 kHz, do_normalize=True, return_attention_mask=False)
        feature_extractor = Wav2Vec2FeatureExtractor()
        source = "default Wav2Vec2FeatureExtractor (no preprocessor_config.json)"
    return model.float().eval(), feature_extractor, source


class SslExtractor(ConvStackExtractor):
    """hidden_states[layer] (or several, stacked) of a local transformers speech model; see the module docstring.

    `layers` and `layer_dim` are public: the store writes them into meta.json so readers can split
    the [.., L*D] frames back into layers.
    """

    name = "ssl"
    batch_size = 8

    def __init__(self, *, upstream: Path | str | None = None, layer: int | None = None,
                 layers: tuple[int, ...] | list[int] | None = None, device: str = "auto",
                 norm: str = DEFAULT_NORM) -> None:
        super().__init__(norm=norm)
        folder = check_upstream(upstream)
        self.model, self.feature_extractor, fe_source = load_upstream(folder)
        cfg = self.model.config
        self.conv = [(int(k), int(s)) for k, s in zip(cfg.conv_kernel, cfg.conv_stride)]
        self.num_hidden_layers = int(cfg.num_hidden_layers)
        self.layer_dim = int(cfg.hidden_size)
        self.layers = self._pick_layers(layer, layers)
        self.dim = len(self.layers) * self.layer_dim
        fe = self.feature_extractor
        if int(fe.sampling_rate) != self.sample_rate:
            raise DataError(f"upstream {folder}: its feature extractor expects {fe.sampling_rate} Hz audio, "
                            f"the clips are {self.sample_rate} Hz")
        self.attention_mask = bool(getattr(fe, "return_attention_mask", False))
        self.do_normalize = bool(getattr(fe, "do_normalize", False))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model.to(self.device)
        self.config.update(model_type=cfg.model_type, upstream=folder.name, upstream_sha256=upstream_sha256(folder),
                           layers=list(self.layers), num_hidden_layers=self.num_hidden_layers,
                           hidden_size=self.layer_dim, feature_extractor=fe_source,
                           do_normalize=self.do_normalize, attention_mask=self.attention_mask)

    def _pick_layers(self, layer: int | None, layers: tuple[int, ...] | list[int] | None) -> tuple[int, ...]:
        if layer is not None and layers is not None:
            raise DataError("give either layer or layers, not both")
        if layers is not None:
            picked = tuple(int(n) for n in layers)
        else:
            picked = (self.num_hidden_layers if layer is None else int(layer),)
        valid = f"0..{self.num_hidden_layers} (0 = CNN/projection output, {self.num_hidden_layers} = last layer)"
        if not picked:
            raise DataError(f"no upstream layers given; choose from {valid}")
        bad = [n for n in picked if not 0 <= n <= self.num_hidden_layers]
        if bad:
            raise DataError(f"upstream layer {bad[0]} out of range: valid layers are {valid}")
        if len(set(picked)) != len(picked):
            raise DataError(f"upstream layers {list(picked)} list a layer twice")
        return picked

    def _compute(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.clamp(self.min_samples(), waves.shape[1])
        # the feature extractor normalises each utterance over its valid samples (it uses the
        # attention mask it returns for that) and pads with its padding value
        valid = [w[:n].numpy() for w, n in zip(waves, lengths.tolist())]
        inputs = self.feature_extractor(valid, sampling_rate=self.sample_rate, padding="max_length",
                                        max_length=waves.shape[1], return_attention_mask=True, return_tensors="pt")
        kwargs = {"attention_mask": inputs["attention_mask"].to(self.device)} if self.attention_mask else {}
        out = self.model(inputs["input_values"].float().to(self.device), output_hidden_states=True, **kwargs)
        return torch.cat([out.hidden_states[n] for n in self.layers], dim=-1)

    def _normalise(self, frames: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Each layer's chunk on its own (see the module docstring); padding frames -> 0 also for norm=none."""
        chunks = []
        for i in range(len(self.layers)):
            chunk = frames[..., i * self.layer_dim:(i + 1) * self.layer_dim]
            chunks.append(super()._normalise(chunk, valid))
        out = np.concatenate(chunks, axis=-1)
        for i, n in enumerate(valid):
            out[i, n:] = 0.0
        return out
