"""EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al. 2005) -> manifest.parquet.

Where to get it: emodb.bilderbar.info ("download.zip"). --root is the unpacked folder that
holds wav/ (or a folder with the wavs directly inside).

Layout read:

    wav/SSTTTEV.wav    e.g. wav/03a01Fa.wav

SS is the speaker (two digits), TTT the text code (a01 ... b10), E the emotion letter (German
initial), V the version letter. Emotions: W Wut (anger) -> ang, L Langeweile (boredom) -> bor,
E Ekel (disgust) -> dis, A Angst (fear) -> fea, F Freude (happiness) -> hap, T Trauer (sadness)
-> sad, N neutral -> neu; the default label map keeps all seven.

Speaker: the two-digit code; gender from the corpus' speaker table (SPEAKER_GENDER); a code
outside it is skipped and named. No sessions (loso leaves one speaker out).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from hcld.data.corpora.common import (
    NameFields,
    PrepareResult,
    Problems,
    Skip,
    apply_label_map,
    build_manifest,
    code_word,
    deeper_hint,
    name_candidates,
    require_dir,
    wav_files,
)
from hcld.errors import DataError

EMOTION_CODES: dict[str, str] = {"W": "ang", "L": "bor", "E": "dis", "A": "fea", "F": "hap", "T": "sad", "N": "neu"}
DEFAULT_LABEL_MAP: dict[str, str | None] = {word: word for word in EMOTION_CODES.values()}
# The ten actors of the corpus documentation (five women, five men).
SPEAKER_GENDER: dict[str, str] = {
    "03": "M", "08": "F", "09": "F", "10": "M", "11": "M", "12": "M", "13": "F", "14": "F", "15": "M", "16": "F",
}
_NAME = re.compile(r"^(?P<speaker>\d{2})(?P<text>[a-z]\d{2})(?P<emotion>[A-Z])(?P<version>[a-z])$")
_LAYOUT = "wav/03a01Fa.wav files (or such wavs directly in the folder)"


def prepare_emodb(root: Path, out_dir: Path, *, label_map: dict[str, str | None] | None = None,
                  strict: bool = False, progress: bool = False) -> PrepareResult:
    """Read EmoDB's wav/ under `root` (or the wavs in `root`) into out_dir/manifest.parquet."""
    root = require_dir(root, "EmoDB", "wav/ (or the wavs themselves)")
    labels = apply_label_map(DEFAULT_LABEL_MAP, label_map)
    problems = Problems(strict)
    dropped: Counter[str] = Counter()
    wavs = wav_files(root / "wav") if (root / "wav").is_dir() else wav_files(root)
    if not wavs:
        raise DataError(f"{root}: no {_LAYOUT}{deeper_hint(root, 'wav')}")

    todo = name_candidates(wavs, _NAME, _read_name,
                           not_like="file name is not like 03a01Fa.wav (speaker, text, emotion, version)",
                           labels=labels, problems=problems, dropped=dropped)
    return build_manifest(todo, out_dir, problems, root=root, dropped=dropped, progress=progress,
                          expected=_LAYOUT)


def _read_name(wav: Path, m: re.Match[str]) -> NameFields:
    """Label word, speaker and gender of a name `_NAME` matched (Skip: why the file is not used)."""
    word = code_word(EMOTION_CODES, m["emotion"], "emotion letter")
    gender = SPEAKER_GENDER.get(m["speaker"])
    if gender is None:
        raise Skip(f"speaker {m['speaker']} is not one of EmoDB's ({', '.join(SPEAKER_GENDER)})")
    return NameFields(word, speaker=m["speaker"], gender=gender)
