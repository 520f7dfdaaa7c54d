"""RAVDESS speech (Livingstone & Russo 2018) -> manifest.parquet.

Where to get it: zenodo.org/record/1188976, "Audio_Speech_Actors_01-24.zip" (CC BY-NC-SA 4.0).
--root is the unpacked folder that holds Actor_01 ... Actor_24.

Layout read:

    Actor_XX/MM-VV-EE-II-SS-RR-AA.wav    e.g. Actor_18/03-01-05-01-02-01-18.wav

The seven two-digit fields are modality, vocal channel, emotion, intensity, statement,
repetition and actor. Only speech is read: modality 03 (audio-only) and vocal channel 01
(speech); other files (01 full-AV and 02 video-only exports, 02 song) are skipped and named,
so a song folder unpacked into the same tree does not slip in.

Emotions: 01 neutral -> neu, 02 calm -> cal, 03 happy -> hap, 04 sad -> sad, 05 angry -> ang,
06 fearful -> fea, 07 disgust -> dis, 08 surprised -> sur. The default label map keeps all eight;
EmoBox-style setups that merge calm into neutral pass `--label-map cal=neu`, and a 4-class setup
adds e.g. `fea=drop,dis=drop,sur=drop`.

Speaker: the actor folder (Actor_01 ...), which must agree with the file's actor field; gender
from the actor number (odd male, even female, as the corpus documents); no sessions (loso
leaves one actor out). RAVDESS wavs are 48 kHz: they are kept and listed as converted (resampled
to 16 kHz on load).
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

EMOTION_CODES: dict[str, str] = {
    "01": "neu", "02": "cal", "03": "hap", "04": "sad", "05": "ang", "06": "fea", "07": "dis", "08": "sur",
}
DEFAULT_LABEL_MAP: dict[str, str | None] = {word: word for word in EMOTION_CODES.values()}
_NAME = re.compile(r"^(?P<modality>\d{2})-(?P<channel>\d{2})-(?P<emotion>\d{2})-(?P<intensity>\d{2})-"
                   r"(?P<statement>\d{2})-(?P<repetition>\d{2})-(?P<actor>\d{2})$")
_MODALITIES = {"01": "full-AV", "02": "video-only", "03": "audio-only"}
_LAYOUT = "Actor_XX/03-01-EE-II-SS-RR-XX.wav files (Audio_Speech_Actors_01-24.zip unpacked)"


def prepare_ravdess(root: Path, out_dir: Path, *, label_map: dict[str, str | None] | None = None,
                    strict: bool = False, progress: bool = False) -> PrepareResult:
    """Read the Actor_XX folders under `root` into out_dir/manifest.parquet."""
    root = require_dir(root, "RAVDESS", "Actor_01 ... Actor_24")
    labels = apply_label_map(DEFAULT_LABEL_MAP, label_map)
    problems = Problems(strict)
    dropped: Counter[str] = Counter()
    wavs = wav_files(root, "Actor_*/*.wav")
    if not wavs:
        raise DataError(f"{root}: no {_LAYOUT} inside{deeper_hint(root, 'Actor_*/*.wav')}")

    todo = name_candidates(wavs, _NAME, _read_name,
                           not_like="file name is not like 03-01-05-01-02-01-18.wav (seven two-digit fields)",
                           labels=labels, problems=problems, dropped=dropped)
    return build_manifest(todo, out_dir, problems, root=root, dropped=dropped, progress=progress,
                          expected=_LAYOUT)


def _read_name(wav: Path, m: re.Match[str]) -> NameFields:
    """Label word, speaker and gender of a speech file `_NAME` matched (Skip: why the file is not used)."""
    if m["modality"] != "03":
        raise Skip(f"modality {m['modality']} ({_MODALITIES.get(m['modality'], 'unknown')}) is not 03 (audio-only)")
    if m["channel"] != "01":
        kind = "song" if m["channel"] == "02" else "unknown"
        raise Skip(f"vocal channel {m['channel']} ({kind}) is not 01 (speech)")
    word = code_word(EMOTION_CODES, m["emotion"])
    speaker = f"Actor_{m['actor']}"
    if wav.parent.name != speaker:
        raise Skip(f"actor field {m['actor']} does not match its folder {wav.parent.name}")
    gender = "M" if int(m["actor"]) % 2 else "F"  # odd actors are male, even female (corpus documentation)
    return NameFields(word, speaker=speaker, gender=gender)
