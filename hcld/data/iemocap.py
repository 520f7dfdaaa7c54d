"""IEMOCAP release tree -> manifest.parquet (one row per kept utterance).

Layout read (the official IEMOCAP_full_release, also what hcld.data.synth writes):

    SessionN/dialog/EmoEvaluation/<dialog>.txt      label lines, e.g.
        [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]
    SessionN/sentences/wav/<dialog>/<utt>.wav       16 kHz mono audio of each utterance

Only the top level of EmoEvaluation/ is read: its subfolders (Categorical/, Attribute/,
Self-evaluation/) hold the individual annotators' votes, and the consensus label is in the
top-level file. Labels kept: ang, hap, exc, neu, sad, with exc merged into hap (the paper's
5531-utterance subset). The speaker is the session plus the gender of the *utterance*
(the letter of its last id segment: Ses01F_impro01_M003 is Ses01M, not Ses01F - the letter
after "Ses01" only says who wore the motion-capture markers in that dialog).

Problems with a file are collected as (file, reason) and the utterance skipped; with
strict=True the first one raises DataError instead. Stereo and higher-rate files are kept
(downmix and resampling happen in hcld.data.audio.read_mono) and listed in `converted`;
files below 16 kHz are skipped because upsampling cannot restore the missing band and
the gap would be a spurious cue.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from hcld.data.audio import audio_info, content_problem
from hcld.errors import DataError
from hcld.fileio import file_sha256, read_parquet_checked, write_parquet_atomic
from hcld.labels import EMOTIONS, IEMOCAP_LABEL_MAP, SAMPLE_RATE, SESSIONS

MANIFEST_COLUMNS: tuple[str, ...] = (
    "utt_id", "path", "emotion", "speaker", "session", "gender", "duration_s", "sample_rate", "sha256",
)
MANIFEST_NAME = "manifest.parquet"

# What this reader yields on the official release (5531 utterances). The paper (IV-A) prints
# ang 1084 / sad 1103, i.e. these two swapped; hcld.labels.IEMOCAP_COUNTS keeps the paper's figures.
RELEASE_COUNTS: dict[str, int] = {"ang": 1103, "hap": 1636, "neu": 1708, "sad": 1084}

# A label line starts with "["; anything else in the file (header, annotator lines "C-E2: ...",
# "A-E3: ...", blank lines) is not a label line and is ignored.
_LABEL_LINE = re.compile(
    r"^\[\s*(?P<start>\d+(?:\.\d+)?)\s*-\s*(?P<end>\d+(?:\.\d+)?)\s*\]\s+"
    r"(?P<utt>\S+)\s+(?P<label>[A-Za-z]+)\s+\[(?P<vad>[^\]]*)\]\s*$"
)
# Ses01F_impro01_M003: session, dialog owner letter, dialog rest, utterance gender, number.
_UTT_ID = re.compile(r"^(?P<session>Ses0[1-5])[FM]_(?P<rest>.+)_(?P<gender>[FM])\d+$")


@dataclass
class PrepareResult:
    manifest_path: Path
    counts: dict[str, int]                       # emotion -> utterances kept
    skipped: list[tuple[str, str]] = field(default_factory=list)    # (file, reason)
    converted: list[tuple[str, str]] = field(default_factory=list)  # (file, what is done on load)
    dropped_labels: dict[str, int] = field(default_factory=dict)   # raw label outside our set -> n
    speakers: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class LabelLine:
    utt_id: str
    label: str
    source: Path
    line_no: int


class _Problems:
    """Collects skip reasons, or raises at once in strict mode."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.items: list[tuple[str, str]] = []

    def add(self, file: Path | str, reason: str) -> None:
        if self.strict:
            raise DataError(f"{file}: {reason} (strict mode; drop --strict to skip such files)")
        self.items.append((str(file), reason))


def parse_label_file(path: Path, problems: _Problems) -> list[LabelLine]:
    """Every label line of one EmoEvaluation file; lines that start with '[' but do not parse are reported."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        problems.add(path, f"cannot read label file ({err})")
        return []
    out = []
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("["):
            continue
        m = _LABEL_LINE.match(line)
        if m is None:
            problems.add(f"{path}:{no}", f"label line does not parse: {line.strip()!r}")
            continue
        out.append(LabelLine(m["utt"], m["label"].lower(), path, no))
    return out


def find_sessions(root: Path, problems: _Problems) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: IEMOCAP folder not found (pass the folder that holds Session1 ... Session5)")
    present = [root / f"Session{i}" for i in range(1, len(SESSIONS) + 1) if (root / f"Session{i}").is_dir()]
    if not present:
        inner = sorted(p.parent for p in root.glob("*/Session1") if p.is_dir())
        hint = f"; did you mean {inner[0]}?" if inner else "; pass the IEMOCAP_full_release folder"
        raise DataError(f"{root}: no Session1 ... Session5 folders inside{hint}")
    for i in range(1, len(SESSIONS) + 1):
        if not (root / f"Session{i}").is_dir():
            problems.add(root / f"Session{i}", "session folder missing")
    return present


def prepare_iemocap(root: Path, out_dir: Path, *, strict: bool = False, progress: bool = False) -> PrepareResult:
    """Read the release tree under `root`, write out_dir/manifest.parquet, return what was kept and skipped."""
    root = Path(root).resolve()
    problems = _Problems(strict)
    converted: list[tuple[str, str]] = []
    dropped: Counter[str] = Counter()
    seen: dict[str, LabelLine] = {}
    todo: list[tuple[LabelLine, str, Path]] = []  # (line, emotion, wav path)

    for session_dir in find_sessions(root, problems):
        emo_dir = session_dir / "dialog" / "EmoEvaluation"
        if not emo_dir.is_dir():
            problems.add(emo_dir, "session has no dialog/EmoEvaluation folder; its utterances are skipped")
            continue
        session = f"Ses0{session_dir.name[-1]}"
        # "._*" files are macOS resource forks that some copies of the corpus carry.
        for label_file in sorted(p for p in emo_dir.glob("*.txt") if not p.name.startswith("._")):
            for line in parse_label_file(label_file, problems):
                emotion = IEMOCAP_LABEL_MAP.get(line.label)
                if emotion is None:
                    dropped[line.label] += 1
                    continue
                where = f"{label_file}:{line.line_no}"
                m = _UTT_ID.match(line.utt_id)
                if m is None:
                    problems.add(where, f"utterance id {line.utt_id!r} is not like Ses01F_impro01_M003")
                    continue
                if m["session"] != session:
                    problems.add(where, f"utterance {line.utt_id} is filed under {session_dir.name}")
                    continue
                if line.utt_id in seen:
                    first = seen[line.utt_id]
                    problems.add(where, f"utterance {line.utt_id} already labelled in {first.source}:{first.line_no}")
                    continue
                seen[line.utt_id] = line
                dialog = line.utt_id.rsplit("_", 1)[0]
                todo.append((line, emotion, session_dir / "sentences" / "wav" / dialog / f"{line.utt_id}.wav"))

    rows = []
    for line, emotion, wav in _progress(todo, progress):
        try:
            info = audio_info(wav)
        except DataError as err:
            problems.add(wav, str(err).removeprefix(f"{wav}: "))
            continue
        if info.sample_rate < SAMPLE_RATE:
            problems.add(wav, f"sample rate {info.sample_rate} Hz is below {SAMPLE_RATE} Hz "
                              "(upsampling cannot restore the missing band)")
            continue
        bad_samples = content_problem(wav)
        if bad_samples:
            problems.add(wav, bad_samples)
            continue
        notes = []
        if info.channels > 1:
            notes.append(f"{info.channels} channels, averaged to mono on load")
        if info.sample_rate != SAMPLE_RATE:
            notes.append(f"{info.sample_rate} Hz, resampled to {SAMPLE_RATE} Hz on load")
        if notes:
            converted.append((str(wav), "; ".join(notes)))
        m = _UTT_ID.match(line.utt_id)
        rows.append({
            "utt_id": line.utt_id, "path": str(wav), "emotion": emotion,
            "speaker": m["session"] + m["gender"], "session": m["session"], "gender": m["gender"],
            "duration_s": info.duration_s, "sample_rate": info.sample_rate, "sha256": file_sha256(wav),
        })

    if not rows:
        shown = "; ".join(f"{f}: {r}" for f, r in problems.items[:5])
        raise DataError(f"{root}: no usable utterances with labels {sorted(IEMOCAP_LABEL_MAP)}"
                        + (f" (problems: {shown})" if shown else ""))
    df = pl.DataFrame(rows, schema=_SCHEMA).sort("utt_id")
    manifest_path = Path(out_dir) / MANIFEST_NAME
    write_parquet_atomic(df, manifest_path)
    counts = {e: int((df["emotion"] == e).sum()) for e in EMOTIONS}
    return PrepareResult(manifest_path=manifest_path, counts=counts, skipped=problems.items, converted=converted,
                         dropped_labels=dict(sorted(dropped.items())), speakers=sorted(df["speaker"].unique()))


_SCHEMA = {
    "utt_id": pl.String, "path": pl.String, "emotion": pl.String, "speaker": pl.String, "session": pl.String,
    "gender": pl.String, "duration_s": pl.Float64, "sample_rate": pl.Int64, "sha256": pl.String,
}


def read_manifest(path: Path | str) -> pl.DataFrame:
    """The manifest as a DataFrame with exactly MANIFEST_COLUMNS; DataError if it is missing or malformed."""
    path = Path(path)
    df = read_parquet_checked(path, "manifest", "run `hcld-grid data prepare` first")
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: manifest lacks columns {missing}")
    if df.height == 0:
        raise DataError(f"{path}: manifest has no rows")
    unknown = sorted(set(df["emotion"].unique()) - set(EMOTIONS))
    if unknown:
        raise DataError(f"{path}: manifest has emotions {unknown} outside {list(EMOTIONS)}")
    if df["utt_id"].n_unique() != df.height:
        raise DataError(f"{path}: manifest lists some utterance ids twice")
    return df.select(MANIFEST_COLUMNS)


def manifest_hash(df: pl.DataFrame) -> str:
    """Content hash of a manifest: sorted (utt_id, sha256, emotion, speaker) rows.

    Paths are left out on purpose, so moving the corpus folder keeps the feature-store key.
    """
    h = hashlib.sha256()
    for utt, sha, emo, spk in df.select("utt_id", "sha256", "emotion", "speaker").sort("utt_id").iter_rows():
        h.update(f"{utt}\t{sha}\t{emo}\t{spk}\n".encode())
    return h.hexdigest()


def _progress(items: list, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="checking wavs", unit="file")
