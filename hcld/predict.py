"""A saved model (hcld.saved_model) on new audio files, with features made the way its trial's were.

The trial's features came from the feature store: each file's first 7.5 s (zero-padded), through
the extractor, normalised over the frames that cover real audio, stored as float16. Here each file
goes the same way (the same extractor, rebuilt from the model's description and checked to have
the same config, and the same float16 rounding), then through hcld.train.evaluate, the function
the trial's own test evaluation used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hcld.data.audio import load_clip, usable_audio
from hcld.errors import DataError
from hcld.features import make_extractor
from hcld.features.store import FP16_MAX
from hcld.placement import HostFeatures
from hcld.saved_model import SavedModel
from hcld.train import evaluate

# make_extractor arguments that name a local folder or file, and the option that replaces each
LOCATIONS = {"upstream": "--upstream", "checkpoint": "--hubert-checkpoint"}


@dataclass
class Predictions:
    files: list[str]
    emotion: list[str]  # the predicted label per file
    prob: np.ndarray  # [N, K] softmax probabilities, columns in SavedModel.emotion_names order
    xe: np.ndarray  # [N, embed_dim]
    xs: np.ndarray  # [N, embed_dim], or [N, 0] without a speaker branch


def rebuild_extractor(saved: SavedModel, replace: dict[str, Path] | None = None):
    """The extractor that made the model's features; `replace` swaps a location argument
    (upstream, checkpoint) for a folder moved since. Refuses one whose config differs."""
    spec = saved.extractor
    if not spec.get("name"):
        raise DataError(f"{saved.folder}: the model does not say how its features were made "
                        f"(no extractor description)")
    arguments: dict[str, Any] = dict(spec.get("arguments", {}))
    for key, path in (replace or {}).items():
        if key not in arguments:
            raise DataError(f"{LOCATIONS.get(key, key)} does not apply: the model's features came from "
                            f"the {spec['name']} extractor, which takes no {key}")
        arguments[key] = str(path)
    for key, option in LOCATIONS.items():
        if key in arguments and not Path(arguments[key]).exists():
            raise DataError(f"the model's features came from {spec['name']} with {key} {arguments[key]}, "
                            f"which is not there: pass {option} PATH (the same {key} the trial used)")
        if key in arguments:
            arguments[key] = Path(arguments[key])
    extractor = make_extractor(spec["name"], **arguments)
    # what the features depend on must match; a location's name may not (a moved folder is the same model)
    trained = spec.get("config") or {}
    differ = sorted(k for k in {*extractor.config, *trained} - set(LOCATIONS)
                    if extractor.config.get(k) != trained.get(k))
    if trained and differ:
        raise DataError(f"the {spec['name']} extractor built here differs from the trial's in {', '.join(differ)}: "
                        f"not the same upstream or settings, so its features would not be the model's")
    return extractor


def predict_files(saved: SavedModel, files: list[Path], *, extractor=None) -> Predictions:
    """Probabilities and embeddings for `files` (each must pass data prepare's checks)."""
    extractor = extractor or rebuild_extractor(saved)
    infos = [usable_audio(f) for f in files]  # DataError naming the first bad file
    samples = np.array([min(int(round(i.duration_s * extractor.sample_rate)), extractor.clip_samples)
                        for i in infos])
    parts = []
    for lo in range(0, len(files), extractor.batch_size):
        waves = np.stack([load_clip(f, sample_rate=extractor.sample_rate, seconds=extractor.clip_seconds)
                          for f in files[lo:lo + extractor.batch_size]])
        frames = extractor(waves, samples[lo:lo + extractor.batch_size])
        parts.append(np.clip(frames, -FP16_MAX, FP16_MAX).astype(np.float16))  # as the store keeps them
    features = np.concatenate(parts)
    cpu = torch.device("cpu")
    config = saved.config
    out = evaluate(saved.model, HostFeatures(features, cpu), np.arange(len(files)),
                   np.asarray(saved.speaker_ids, dtype=np.int64), int(config["batch_size"]),
                   str(config.get("precision", "fp32")))
    return Predictions(files=[str(f) for f in files],
                       emotion=[saved.emotion_names[int(k)] for k in out["emo_pred"]],
                       prob=out["emo_prob"], xe=out["xe"], xs=out["xs"])
