"""CREMA-D (Cao et al. 2014) -> manifest.parquet.

Where to get it: github.com/CheyneyComputerScience/CREMA-D (Git LFS; ODbL), or the Kaggle
mirror "cremad". --root is the repository folder (holding AudioWAV/ and VideoDemographics.csv),
or a folder with the wavs directly inside.

Layout read:

    AudioWAV/AAAA_SSS_EEE_LL.wav    e.g. AudioWAV/1001_DFA_ANG_XX.wav

AAAA is the 4-digit actor id (1001 ... 1091), SSS one of the 12 sentence codes, EEE the emotion,
LL the intensity (LO, MD, HI, XX unspecified). Emotions: ANG ang, DIS dis, FEA fea, HAP hap,
NEU neu, SAD sad; the default label map keeps all six.

Speaker: the actor id; gender from VideoDemographics.csv (columns ActorID, Sex) when it is in
--root, else null; no sessions (loso leaves one actor out). Some copies hold a 0-byte
1076_MTI_SAD_XX.wav: it is skipped like any empty file.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

from hcld.data.corpora.common import (
    NameFields,
    PrepareResult,
    Problems,
    apply_label_map,
    build_manifest,
    code_word,
    deeper_hint,
    name_candidates,
    normal_gender,
    require_dir,
    wav_files,
)
from hcld.errors import DataError

EMOTION_CODES: dict[str, str] = {"ANG": "ang", "DIS": "dis", "FEA": "fea", "HAP": "hap", "NEU": "neu", "SAD": "sad"}
DEFAULT_LABEL_MAP: dict[str, str | None] = {word: word for word in EMOTION_CODES.values()}
DEMOGRAPHICS = "VideoDemographics.csv"
_NAME = re.compile(r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$")
_LAYOUT = "AudioWAV/1001_DFA_ANG_XX.wav files (or such wavs directly in the folder)"


def prepare_cremad(root: Path, out_dir: Path, *, label_map: dict[str, str | None] | None = None,
                   strict: bool = False, progress: bool = False) -> PrepareResult:
    """Read CREMA-D's AudioWAV/ under `root` (or the wavs in `root`) into out_dir/manifest.parquet."""
    root = require_dir(root, "CREMA-D", "AudioWAV/ (or the wavs themselves)")
    labels = apply_label_map(DEFAULT_LABEL_MAP, label_map)
    problems = Problems(strict)
    dropped: Counter[str] = Counter()
    wavs = wav_files(root / "AudioWAV") if (root / "AudioWAV").is_dir() else wav_files(root)
    if not wavs:
        raise DataError(f"{root}: no {_LAYOUT}{deeper_hint(root, 'AudioWAV')}")
    genders = read_demographics(root / DEMOGRAPHICS)

    def read(wav: Path, m: re.Match[str]) -> NameFields:
        return NameFields(code_word(EMOTION_CODES, m["emotion"]), speaker=m["actor"], gender=genders.get(m["actor"]))

    todo = name_candidates(wavs, _NAME, read, not_like="file name is not like 1001_DFA_ANG_XX.wav",
                           labels=labels, problems=problems, dropped=dropped)
    return build_manifest(todo, out_dir, problems, root=root, dropped=dropped, progress=progress,
                          expected=_LAYOUT)


def read_demographics(path: Path) -> dict[str, str]:
    """Actor id -> "F"/"M" from VideoDemographics.csv; {} when the file is absent."""
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not {"ActorID", "Sex"} <= set(reader.fieldnames or ()):
            raise DataError(f"{path}: expected columns ActorID and Sex, found {reader.fieldnames}")
        return {row["ActorID"].strip(): normal_gender(row["Sex"]) for row in reader
                if row["ActorID"] and normal_gender(row["Sex"])}
