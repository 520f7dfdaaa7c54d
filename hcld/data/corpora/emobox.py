"""EmoBox metadata (Ma et al., Interspeech 2024) -> manifest.parquet.

Where to get it: github.com/emo-box/EmoBox holds the metadata (data/<dataset>/<dataset>.jsonl,
with label_map.json and data.seg.wrd.stm beside it) for 32 corpora; the audio itself comes from
each corpus' own site, unpacked where the metadata's paths say (downloads/<dataset>/...).
--root is one .jsonl file or a folder of them: a folder's top-level *.jsonl only, because its
fold_N/ subfolders repeat the same utterances.

Each line is a JSON object like

    {"key": "cafe-12-P-2-5", "dataset": "cafe", "wav": "downloads/cafe/CaFE_48k/Peur/Fort/12-P-2-5.wav",
     "type": "raw", "sample_rate": 48000, "num_frame": 248653.0, "task": "category",
     "length": 5.18, "emo": "p", "channel": 1}

Fields used: key (the utterance id), wav, emo, dataset; "speaker"/"spk" and "gender"/"gd" when
present. Lines with type other than "raw" (precomputed features), task other than "category",
or start_time/end_time (a segment of a longer file; manifest rows are whole files) are skipped
and named. The facts of the audio (rate, length) are read from the wav, not the metadata.

Paths: a relative wav is looked up against the jsonl's folder, then each folder above it (EmoBox
writes paths relative to its checkout: data/cafe/cafe.jsonl names downloads/cafe/...); the
first that holds the file wins.

Labels: `emo` goes through the label_map.json beside the jsonl when there is one (EmoBox's own
code -> word table, e.g. "p" -> "Fear"), is lower-cased, then mapped with DEFAULT_LABEL_MAP:
every label word (hcld.labels.LABEL_WORDS) from its three-letter form, its adjective and its
noun (angry/anger -> ang, happy/happiness -> hap, fear/fearful -> fea, ...). Other labels
(e.g. "other", "pleasure") are dropped unless --label-map names them.

Speaker: the line's "speaker" or "spk" field; else the speaker column of data.seg.wrd.stm beside
the jsonl (EmoBox's "<key> <channel> <speaker> <start> <end> ..." lines); else the first
"-"-separated field of the key after its "<dataset>-" prefix (right for keys like cafe-12-P-2-5
and cremad-1001-DFA-ANG-XX, not for every corpus: keep the stm file). Speakers are written as
"<dataset>-<speaker>", so a folder of several datasets keeps them apart. No sessions.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from hcld.data.corpora.common import (
    Candidate,
    PrepareResult,
    Problems,
    apply_label_map,
    build_manifest,
    jsonl_records,
    map_label,
    normal_gender,
)
from hcld.errors import DataError
from hcld.labels import LABEL_WORDS

_NOUNS = {"anger": "ang", "happiness": "hap", "sadness": "sad", "fear": "fea", "disgust": "dis", "surprise": "sur",
          "boredom": "bor", "contempt": "con", "frustration": "fru", "excitement": "exc"}
DEFAULT_LABEL_MAP: dict[str, str | None] = {
    **{label: label for label in LABEL_WORDS}, **{word: label for label, word in LABEL_WORDS.items()},
    **_NOUNS,
}
CODE_MAP = "label_map.json"
SPEAKER_LIST = "data.seg.wrd.stm"


def prepare_emobox(root: Path, out_dir: Path, *, label_map: dict[str, str | None] | None = None,
                   strict: bool = False, progress: bool = False) -> PrepareResult:
    """Read EmoBox jsonl metadata (a file or a folder of them) into out_dir/manifest.parquet."""
    root = Path(root)
    if root.is_dir():
        files = sorted(p for p in root.glob("*.jsonl") if p.is_file())
        if not files:
            raise DataError(f"{root}: no *.jsonl files inside (pass an EmoBox data/<dataset>/<dataset>.jsonl "
                            "or its folder)")
    elif root.is_file():
        files = [root]
    else:
        raise DataError(f"{root}: EmoBox metadata not found (pass data/<dataset>/<dataset>.jsonl or its folder)")
    root = root.resolve()
    labels = apply_label_map(DEFAULT_LABEL_MAP, label_map)
    problems = Problems(strict)
    dropped: Counter[str] = Counter()
    todo = []
    for path in (f.resolve() for f in files):
        todo += _candidates(path, labels, problems, dropped)
    return build_manifest(todo, out_dir, problems, root=root, dropped=dropped, progress=progress,
                          expected='EmoBox jsonl lines like {"key": ..., "wav": ..., "emo": ...} naming existing wavs')


def _candidates(path: Path, labels: dict[str, str | None], problems: Problems,
                dropped: Counter[str]) -> list[Candidate]:
    folder = path.parent
    codes = _read_codes(folder / CODE_MAP)
    stm_speakers = _read_stm_speakers(folder / SPEAKER_LIST)
    bases = [folder, *folder.parents]
    out = []
    for no, rec in jsonl_records(path, problems):
        where = f"{path}:{no}"
        missing = [k for k in ("key", "wav", "emo") if rec.get(k) in (None, "")]
        if missing:
            problems.add(where, f"line lacks {', '.join(missing)}")
            continue
        if rec.get("type", "raw") != "raw":
            problems.add(where, f"type {rec['type']!r} is not raw audio")
            continue
        if rec.get("task", "category") != "category":
            problems.add(where, f"task {rec['task']!r} is not category")
            continue
        if "start_time" in rec or "end_time" in rec:
            problems.add(where, "a segment (start_time/end_time) of a longer file; manifest rows are whole files")
            continue
        key, dataset = str(rec["key"]), str(rec.get("dataset") or path.stem)
        given = next((str(rec[k]).strip() for k in ("speaker", "spk") if rec.get(k) not in (None, "")), "")
        speaker = given or stm_speakers.get(key) or _speaker_from_key(key, dataset)
        if not speaker:
            problems.add(where, f"no speaker: no speaker/spk field, no {SPEAKER_LIST} line, key {key!r} has none")
            continue
        raw = str(rec["emo"])
        emotion = map_label(labels, str(codes.get(raw, raw)).strip().lower(), dropped)
        if emotion is None:
            continue
        out.append(Candidate(key, _resolve(str(rec["wav"]), bases), emotion, speaker=f"{dataset}-{speaker}",
                             gender=normal_gender(rec.get("gender", rec.get("gd")))))
    return out


def _speaker_from_key(key: str, dataset: str) -> str:
    return key.removeprefix(f"{dataset}-").split("-")[0]


def _resolve(wav: str, bases: list[Path]) -> Path:
    path = Path(wav)
    if path.is_absolute():
        return path
    return next((b / path for b in bases if (b / path).is_file()), bases[0] / path)


def _read_codes(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        codes = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not a readable JSON object of label codes ({err})") from err
    if not isinstance(codes, dict):
        raise DataError(f"{path}: expected a JSON object of label code -> label, found {type(codes).__name__}")
    return {str(k): str(v) for k, v in codes.items()}


def _read_stm_speakers(path: Path) -> dict[str, str]:
    """key -> speaker from EmoBox's stm lines ("<key> <channel> <speaker> ..."); {} without the file."""
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 3:
            out[fields[0]] = fields[2]
    return out
