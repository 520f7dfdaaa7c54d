"""IEMOCAP release tree -> manifest.parquet (one row per kept utterance).

Layout read (the official IEMOCAP_full_release, also what hcld.data.synth writes):

    SessionN/dialog/EmoEvaluation/<dialog>.txt      label lines, e.g.
        [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]
    SessionN/sentences/wav/<dialog>/<utt>.wav       16 kHz mono audio of each utterance

Only the top level of EmoEvaluation/ is read: its subfolders (Categorical/, Attribute/,
Self-evaluation/) hold the individual annotators' votes, and the consensus label is in the
top-level file. Default label map (hcld.labels.IEMOCAP_LABEL_MAP): ang, hap, exc, neu, sad kept,
exc merged into hap (the paper's 5531-utterance subset); the rest (fru, sur, fea, dis, oth, xxx)
dropped. `--label-map exc=exc,fru=fru` keeps more classes. Where to get it: sail.usc.edu/iemocap
(a release form); --root is IEMOCAP_full_release. The speaker is the session plus the gender of the *utterance*
(the letter of its last id segment: Ses01F_impro01_M003 is Ses01M, not Ses01F - the letter
after "Ses01" only says who wore the motion-capture markers in that dialog).

Problems with a file are collected as (file, reason) and the utterance skipped; with
strict=True the first one raises DataError instead. The wav checks (below 16 kHz skipped,
stereo and higher rates kept and listed in `converted`) are hcld.data.corpora.common's.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hcld.data.corpora.common import (
    Candidate,
    PrepareResult,
    Problems,
    apply_label_map,
    build_manifest,
    map_label,
    require_dir,
)
from hcld.errors import DataError
from hcld.labels import IEMOCAP_LABEL_MAP, SESSIONS

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


@dataclass(frozen=True)
class LabelLine:
    utt_id: str
    label: str
    source: Path
    line_no: int


def parse_label_file(path: Path, problems: Problems) -> list[LabelLine]:
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


def find_sessions(root: Path, problems: Problems) -> list[Path]:
    root = require_dir(root, "IEMOCAP", "Session1 ... Session5")
    present = [root / f"Session{i}" for i in range(1, len(SESSIONS) + 1) if (root / f"Session{i}").is_dir()]
    if not present:
        inner = sorted(p.parent for p in root.glob("*/Session1") if p.is_dir())
        hint = f"; did you mean {inner[0]}?" if inner else "; pass the IEMOCAP_full_release folder"
        raise DataError(f"{root}: no Session1 ... Session5 folders inside{hint}")
    for i in range(1, len(SESSIONS) + 1):
        if not (root / f"Session{i}").is_dir():
            problems.add(root / f"Session{i}", "session folder missing")
    return present


def prepare_iemocap(root: Path, out_dir: Path, *, label_map: dict[str, str | None] | None = None,
                    strict: bool = False, progress: bool = False) -> PrepareResult:
    """Read the release tree under `root`, write out_dir/manifest.parquet, return what was kept and skipped.

    label_map: the user's entries over IEMOCAP_LABEL_MAP (hcld.data.corpora.common.apply_label_map).
    """
    root = Path(root).resolve()
    labels = apply_label_map(IEMOCAP_LABEL_MAP, label_map)
    problems = Problems(strict)
    dropped: Counter[str] = Counter()
    seen: dict[str, LabelLine] = {}
    todo: list[Candidate] = []

    for session_dir in find_sessions(root, problems):
        emo_dir = session_dir / "dialog" / "EmoEvaluation"
        if not emo_dir.is_dir():
            problems.add(emo_dir, "session has no dialog/EmoEvaluation folder; its utterances are skipped")
            continue
        session = f"Ses0{session_dir.name[-1]}"
        # "._*" files are macOS resource forks that some copies of the corpus carry.
        for label_file in sorted(p for p in emo_dir.glob("*.txt") if not p.name.startswith("._")):
            for line in parse_label_file(label_file, problems):
                emotion = map_label(labels, line.label, dropped)
                if emotion is None:
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
                wav = session_dir / "sentences" / "wav" / dialog / f"{line.utt_id}.wav"
                todo.append(Candidate(line.utt_id, wav, emotion, speaker=m["session"] + m["gender"],
                                      session=m["session"], gender=m["gender"]))

    kept = sorted({t for t in labels.values() if t is not None})
    return build_manifest(todo, out_dir, problems, root=root, dropped=dropped, progress=progress,
                          expected=f"labelled utterances with labels {kept} under SessionN/sentences/wav/")
