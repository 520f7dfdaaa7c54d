"""A trained model kept with its trial (`--save-models`), and loading it back (`hcld-grid predict`).

<trial artifacts>/model/
    model.pt     the state dict (weights, LayerMix logits, label anchors as they meet X_e)
    model.json   what the weights need around them: HCLDModel.arguments, the label set (class-index
                 order), the training speakers (speaker class -> speaker id), how the features were
                 computed from audio (TrialData.extractor: make_extractor's name and arguments, and
                 the store entry's config the rebuilt extractor must match), the trial's config and
                 reported epoch

The model saved is the one the trial reports (the chosen epoch under best_val, else the last).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hcld.errors import DataError
from hcld.fileio import atomic_path, write_json_atomic
from hcld.models import HCLDModel

MODEL_DIR = "model"  # under a trial's artifacts folder
WEIGHTS_FILE = "model.pt"
DESCRIPTION_FILE = "model.json"
FORMAT = 1  # model.json's layout; bumped when it changes


@dataclass
class SavedModel:
    model: HCLDModel  # in eval mode, on the CPU
    emotion_names: list[str]
    speaker_ids: list[int]  # speaker class -> speaker id of the training data
    extractor: dict[str, Any]  # TrialData.extractor
    config: dict[str, Any]  # the trial's TrialConfig, as a dict
    reported_epoch: int
    folder: Path


def write_model(folder: Path, model: HCLDModel, *, emotion_names, speaker_ids, extractor: dict,
               config, reported_epoch: int) -> Path:
    """Write model.pt and model.json into `folder` (created); returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        torch.save(state, tmp)
    description = {
        "format": FORMAT, "arguments": model.arguments, "emotion_names": list(emotion_names),
        "speaker_ids": [int(s) for s in speaker_ids], "extractor": extractor,
        "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config),
        "reported_epoch": int(reported_epoch),
    }
    write_json_atomic(folder / DESCRIPTION_FILE, description, indent=1)
    return folder


def model_folder(path: Path) -> Path:
    """The model folder `path` names: the folder itself, its model.pt or model.json, or a trial's
    artifacts folder holding model/."""
    path = Path(path)
    if path.is_file() and path.name in (WEIGHTS_FILE, DESCRIPTION_FILE):
        path = path.parent
    if (path / MODEL_DIR / DESCRIPTION_FILE).is_file():
        path = path / MODEL_DIR
    if not (path / DESCRIPTION_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise DataError(f"{path}: no saved model here (expected {DESCRIPTION_FILE} and {WEIGHTS_FILE}; "
                        f"run the grid with --save-models and pass a trial's artifacts folder or its "
                        f"{MODEL_DIR}/ folder)")
    return path


def load_model(path: Path) -> SavedModel:
    folder = model_folder(path)
    try:
        description = json.loads((folder / DESCRIPTION_FILE).read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{folder / DESCRIPTION_FILE}: not valid JSON ({err})") from err
    if description.get("format") != FORMAT:
        raise DataError(f"{folder / DESCRIPTION_FILE}: model format {description.get('format')!r}, "
                        f"this hcld-grid reads format {FORMAT}")
    model = HCLDModel.from_arguments(description["arguments"])
    state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return SavedModel(model=model, emotion_names=list(description["emotion_names"]),
                      speaker_ids=list(description["speaker_ids"]), extractor=dict(description["extractor"]),
                      config=dict(description["config"]), reported_epoch=int(description["reported_epoch"]),
                      folder=folder)

