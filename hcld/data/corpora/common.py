"""What every corpus reader shares: problem collection, label maps, the wav checks, the result.

A reader's own job is to turn its corpus' layout into `Candidate`s (utterance id, wav file,
label word, speaker, session, gender). `build_manifest` then checks every wav the same way for
all corpora, so "which files are usable" never depends on which reader found them:

- unreadable, empty, missing, NaN/inf or all-silent files are skipped, each named with its reason;
- files below 16 kHz are skipped: upsampling cannot restore the missing band, and the gap
  would be a cue that tells corpora (or speakers) apart instead of emotions;
- stereo and higher-rate files are kept (hcld.data.audio.read_mono downmixes and resamples
  on load) and listed in `converted`, so the user sees what is changed;
- a second candidate with an utterance id already seen is skipped and named.

Label maps: each reader decodes its corpus' emotion codes into label words, then maps those
words with its documented default map, which the user's `--label-map` overrides or extends
(`parse_label_map`, `apply_label_map`). A word the resulting map does not keep is counted in
`dropped_labels`, not named file by file: dropping classes is a choice, not a fault.

Readers whose labels live in the file names (RAVDESS, CREMA-D, EmoDB) share the per-file loop
(`name_candidates`): each supplies its name pattern and a `read` that turns a matching name
into `NameFields` or raises `Skip` with the reason the file is named with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from re import Match, Pattern
from typing import NamedTuple

from hcld.data.audio import usable_audio
from hcld.data.manifest import LABEL_WORD, write_manifest
from hcld.errors import DataError
from hcld.fileio import file_sha256
from hcld.labels import SAMPLE_RATE

DROP = "drop"  # the --label-map target that drops a label


@dataclass
class PrepareResult:
    manifest_path: Path
    counts: dict[str, int]  # the data's own labels -> utterances kept, sorted by label
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    converted: list[tuple[str, str]] = field(default_factory=list)  # (file, what is done on load)
    dropped_labels: dict[str, int] = field(default_factory=dict)  # label the map does not keep -> n
    speakers: list[str] = field(default_factory=list)
    speaker_counts: dict[str, int] = field(default_factory=dict)  # speaker -> utterances kept, sorted

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class Problems:
    """Collects skip reasons, or raises at once in strict mode."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.items: list[tuple[str, str]] = []

    def add(self, file: Path | str, reason: str) -> None:
        if self.strict:
            raise DataError(f"{file}: {reason} (strict mode; drop --strict to skip such files)")
        self.items.append((str(file), reason))


class Candidate(NamedTuple):
    """One utterance a reader found, before its wav is checked."""

    utt_id: str
    wav: Path
    emotion: str  # label word after the label map
    speaker: str
    session: str | None = None
    gender: str | None = None  # "F", "M" or None


class NameFields(NamedTuple):
    """What a reader reads from one wav's file name (and its own speaker tables)."""

    word: str  # label word before the label map
    speaker: str
    gender: str | None = None  # "F", "M" or None


class Skip(Exception):
    """A file a reader does not use; the message is the reason it is named with."""


def parse_label_map(text: str | None) -> dict[str, str | None]:
    """'exc=hap,fru=drop' -> {'exc': 'hap', 'fru': None} (None: drop that label).

    Keys are the reader's label words (lower-cased, as every reader lower-cases labels); a
    target is a label word (hcld.data.manifest.LABEL_WORD) or `drop`.
    """
    out: dict[str, str | None] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        raw, sep, target = (part.strip() for part in item.partition("="))
        if not sep or not raw or not target:
            raise DataError(f"--label-map item {item!r} is not like exc=hap or fru=drop")
        raw, target = raw.lower(), target.lower()
        if raw in out:
            raise DataError(f"--label-map maps {raw!r} twice")
        out[raw] = None if target == DROP else _checked_target(raw, target)
    return out


def apply_label_map(default_map: Mapping[str, str | None],
                    user_map: Mapping[str, str | None] | None) -> dict[str, str | None]:
    """The reader's default map with the user's entries over it (override or extend; None drops)."""
    merged = dict(default_map)
    for raw, target in (user_map or {}).items():
        merged[raw.lower()] = None if target is None else _checked_target(raw, target)
    return merged


def map_label(label_map: Mapping[str, str | None], raw: str, dropped: Counter[str]) -> str | None:
    """The label word `raw` becomes, or None (counted in `dropped`) when the map does not keep it."""
    target = label_map.get(raw)
    if target is None:
        dropped[raw] += 1
    return target


def _checked_target(raw: str, target: str) -> str:
    if not LABEL_WORD.match(target):
        raise DataError(f"--label-map {raw}={target}: {target!r} is not a label word "
                        f"(lower case letters, digits, _ or -, starting with a letter) nor {DROP!r}")
    return target


def require_dir(root: Path, what: str, holds: str) -> Path:
    """`root` resolved; DataError naming it and what it should hold when it is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: {what} folder not found (pass the folder that holds {holds})")
    return root.resolve()


def wav_files(folder: Path, pattern: str = "*.wav") -> list[Path]:
    """Sorted wavs matching `pattern` under `folder`, without macOS resource forks ("._*"), which some
    copies of the corpora carry."""
    return sorted(p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith("._"))


def name_candidates(wavs: Iterable[Path], name: Pattern[str], read: Callable[[Path, Match[str]], NameFields], *,
                    not_like: str, labels: Mapping[str, str | None], problems: Problems,
                    dropped: Counter[str]) -> list[Candidate]:
    """Candidates of wavs whose names carry the labels; the utterance id is the file stem.

    A stem `name` does not match is skipped with the reason `not_like`; `read` takes the fields
    from the match or raises Skip; the label word then goes through `labels` (a word it does not
    keep is counted in `dropped`). Checks run in that order, so a file with several faults is
    named with the first.
    """
    out = []
    for wav in wavs:
        m = name.match(wav.stem)
        if m is None:
            problems.add(wav, not_like)
            continue
        try:
            fields = read(wav, m)
        except Skip as skip:
            problems.add(wav, str(skip))
            continue
        emotion = map_label(labels, fields.word, dropped)
        if emotion is not None:
            out.append(Candidate(wav.stem, wav, emotion, speaker=fields.speaker, gender=fields.gender))
    return out


def code_word(codes: Mapping[str, str], code: str, what: str = "emotion code") -> str:
    """The label word of a corpus' emotion code; Skip listing the known codes when it is not one."""
    word = codes.get(code)
    if word is None:
        raise Skip(f"unknown {what} {code} (known: {', '.join(codes)})")
    return word


def jsonl_records(path: Path, problems: Problems) -> list[tuple[int, dict]]:
    """(line number, object) of each non-blank line of a JSONL file; a line that is not a JSON object
    is reported as path:line."""
    import json

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read ({err})") from err
    out = []
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            problems.add(f"{path}:{no}", f"not JSON ({err.msg})")
            continue
        if not isinstance(record, dict):
            problems.add(f"{path}:{no}", f"not a JSON object but {type(record).__name__}")
            continue
        out.append((no, record))
    return out


def normal_gender(value: object) -> str | None:
    """'F'/'M' for f, female, m, male (any case); None for anything else, empty included."""
    return _GENDERS.get(str(value).strip().lower()) if value is not None else None


_GENDERS = {"f": "F", "female": "F", "m": "M", "male": "M"}


def deeper_hint(root: Path, pattern: str) -> str:
    """'; did you mean X?' when `pattern` matches one folder level below root (a zip unpacked into a
    folder of its own), else ''."""
    inner = sorted({p.parent for p in root.glob(f"*/{pattern}")})
    return f"; did you mean {inner[0]}?" if inner else ""


def build_manifest(candidates: Iterable[Candidate], out_dir: Path | str, problems: Problems, *,
                   root: Path, dropped: Counter[str], expected: str, progress: bool = False) -> PrepareResult:
    """Check each candidate's wav, write out_dir/manifest.parquet of the usable ones, say what was kept.

    `expected` describes what the reader looks for; it goes into the error when nothing is usable.
    """
    rows, converted = [], []
    seen: dict[str, Path] = {}
    for cand in _progress(list(candidates), progress):
        if cand.utt_id in seen:
            problems.add(cand.wav, f"utterance id {cand.utt_id} already used by {seen[cand.utt_id]}")
            continue
        seen[cand.utt_id] = cand.wav
        row = _checked_row(cand, problems, converted)
        if row is not None:
            rows.append(row)

    if not rows:
        shown = "; ".join(f"{f}: {r}" for f, r in problems.items[:5])
        dropped_note = f" (labels dropped by the label map: {dict(sorted(dropped.items()))})" if dropped else ""
        raise DataError(f"{root}: no usable utterances; expected {expected}{dropped_note}"
                        + (f" (problems: {shown})" if shown else ""))
    manifest_path = write_manifest(rows, out_dir)
    counts = Counter(r["emotion"] for r in rows)
    speakers = Counter(r["speaker"] for r in rows)
    return PrepareResult(manifest_path=manifest_path, counts=dict(sorted(counts.items())), skipped=problems.items,
                         converted=converted, dropped_labels=dict(sorted(dropped.items())),
                         speakers=sorted(speakers), speaker_counts=dict(sorted(speakers.items())))


def _checked_row(cand: Candidate, problems: Problems, converted: list[tuple[str, str]]) -> dict | None:
    wav = cand.wav
    try:
        info = usable_audio(wav)
    except DataError as err:
        problems.add(wav, str(err).removeprefix(f"{wav}: "))
        return None
    notes = []
    if info.channels > 1:
        notes.append(f"{info.channels} channels, averaged to mono on load")
    if info.sample_rate != SAMPLE_RATE:
        notes.append(f"{info.sample_rate} Hz, resampled to {SAMPLE_RATE} Hz on load")
    if notes:
        converted.append((str(wav), "; ".join(notes)))
    return {
        "utt_id": cand.utt_id, "path": str(wav), "emotion": cand.emotion, "speaker": cand.speaker,
        "session": cand.session, "gender": cand.gender, "duration_s": info.duration_s,
        "sample_rate": info.sample_rate, "sha256": file_sha256(wav),
    }


def _progress(items: list, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="checking wavs", unit="file")
