"""HuBERT-base frames from a LOCAL checkpoint (the paper's feature extractor, section III-A).

The architecture is torchaudio's `hubert_base()`; the weights are the file torchaudio's
`HUBERT_BASE` bundle downloads (hubert_fairseq_base_ls960.pth, a plain state dict). Nothing is
ever downloaded here and a missing or mismatched checkpoint is an error, never a random model.

Tests (and anyone trying a smaller model) may instead save {"config": {...}, "state_dict": ...},
where "config" holds keyword arguments of `torchaudio.models.wav2vec2_model` (the builder behind
`hubert_base`); keys left out take HUBERT_BASE's values.

The model sees the zero-padded 7.5 s clip together with its true length, so the transformer does
not attend to the padding; a 7.5 s clip gives 374 frames (conv stack: 400-sample receptive field,
320-sample hop).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch

from hcld.errors import DataError, MissingAssetError
from hcld.features import DEFAULT_NORM
from hcld.features.conv_stack import ConvStackExtractor
from hcld.fileio import file_sha256

CHECKPOINT_NAME = "hubert_fairseq_base_ls960.pth"
CHECKPOINT_URL = f"https://download.pytorch.org/torchaudio/models/{CHECKPOINT_NAME}"

DOWNLOAD_HELP = (
    f"The hubert extractor needs torchaudio's HuBERT-base checkpoint (torchaudio.pipelines.HUBERT_BASE, "
    f"file {CHECKPOINT_NAME}, about 360 MB), which is never downloaded automatically. On a machine with "
    f"network access get it with\n"
    f"    curl -L -o {CHECKPOINT_NAME} {CHECKPOINT_URL}\n"
    f"(or run `torchaudio.pipelines.HUBERT_BASE.get_model()` once and copy it from "
    f"~/.cache/torch/hub/checkpoints/), put it e.g. at data/checkpoints/{CHECKPOINT_NAME} and pass "
    f"its path with --checkpoint (hcld-grid features) or --hubert-checkpoint (hcld-grid run). "
    f"Without a checkpoint use --extractor fbank / --features fbank."
)


def base_params() -> dict[str, Any]:
    """wav2vec2_model keyword arguments of torchaudio's HUBERT_BASE bundle."""
    from torchaudio.pipelines import HUBERT_BASE

    return dict(HUBERT_BASE._params)


def load_checkpoint(path: Path | None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(wav2vec2_model kwargs, state dict) from a plain HUBERT_BASE state dict or a {config, state_dict} file."""
    if path is None:
        raise MissingAssetError(f"No HuBERT checkpoint given. {DOWNLOAD_HELP}")
    path = Path(path)
    if not path.is_file():
        raise MissingAssetError(f"HuBERT checkpoint {path} does not exist. {DOWNLOAD_HELP}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and truncation errors all mean "not a usable checkpoint"
        raise DataError(f"HuBERT checkpoint {path} cannot be read as a torch state dict ({exc}). "
                        f"{DOWNLOAD_HELP}") from exc
    if not isinstance(blob, dict):
        raise DataError(f"HuBERT checkpoint {path} holds a {type(blob).__name__}, not a state dict. {DOWNLOAD_HELP}")
    params = base_params()
    if "config" in blob and "state_dict" in blob:
        allowed = set(inspect.signature(_builder()).parameters)
        unknown = sorted(set(blob["config"]) - allowed)
        if unknown:
            raise DataError(f"HuBERT checkpoint {path}: config keys {unknown} are not arguments of "
                            f"torchaudio.models.wav2vec2_model ({sorted(allowed)})")
        params.update(blob["config"])
        state = blob["state_dict"]
    elif "model" in blob and ("cfg" in blob or "args" in blob):
        raise DataError(f"HuBERT checkpoint {path} is a fairseq checkpoint, not torchaudio's. {DOWNLOAD_HELP}")
    else:
        state = blob
    return params, state


def _builder():
    from torchaudio.models import wav2vec2_model

    return wav2vec2_model


def build_model(path: Path | None) -> tuple[torch.nn.Module, dict[str, Any]]:
    params, state = load_checkpoint(path)
    params["extractor_conv_layer_config"] = [tuple(c) for c in params["extractor_conv_layer_config"]]
    model = _builder()(**params)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first_lines = "\n".join(str(exc).splitlines()[:6])
        raise DataError(f"HuBERT checkpoint {path} does not match the HuBERT architecture "
                        f"(embed dim {params['encoder_embed_dim']}, {params['encoder_num_layers']} layers):\n"
                        f"{first_lines}\n{DOWNLOAD_HELP}") from exc
    return model.eval(), params


class HubertExtractor(ConvStackExtractor):
    name = "hubert"
    batch_size = 8

    def __init__(self, *, checkpoint: Path | None = None, layer: int | None = None, device: str = "auto",
                 norm: str = DEFAULT_NORM) -> None:
        super().__init__(norm=norm)
        self.model, params = build_model(checkpoint)
        self.conv = [(int(k), int(s)) for _, k, s in params["extractor_conv_layer_config"]]
        n_layers = int(params["encoder_num_layers"])
        self.layer = n_layers if layer is None else int(layer)
        if not 1 <= self.layer <= n_layers:
            raise DataError(f"HuBERT layer {layer} out of range: the checkpoint has layers 1..{n_layers}")
        self.dim = int(params["encoder_embed_dim"])
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model.to(self.device)
        path = Path(checkpoint)
        # The weights are identified by content, not by where the file lives.
        self.config.update(checkpoint_name=path.name, checkpoint_sha256=file_sha256(path),
                           checkpoint_bytes=path.stat().st_size, layer=self.layer, num_layers=n_layers,
                           embed_dim=self.dim, mask_padding=True)

    def _compute(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.clamp(self.min_samples(), waves.shape[1]).to(self.device)
        layers, _ = self.model.extract_features(waves.to(self.device), lengths, num_layers=self.layer)
        return layers[-1]
