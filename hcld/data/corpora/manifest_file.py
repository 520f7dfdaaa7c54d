"""A list of one's own (CSV or JSONL) -> manifest.parquet: any corpus this project has no reader for.

--root is the list file; its suffix picks the format (.csv with a header line, or .jsonl with one
JSON object a line). Columns (CSV header names are case-insensitive):

    path      wav file, relative to the list's folder or absolute          required
    emotion   label (lower-cased)                                          required
    speaker   speaker id, unique over the corpus                           required
    session   recording session or other group ("group" is accepted too)   optional
    gender    F / M (female, male, f, m in any case; empty when unknown)   optional
    utt_id    unique id; default: the path relative to the list's folder,  optional
              without its suffix, "/" replaced by "_" (a/b/c.wav -> a_b_c)

A required column missing from the whole file is a DataError naming the file and the columns
it has; a row with an empty required field, or an unknown gender, is skipped and named by line
number. Default label map: every label that is a label word (hcld.data.manifest.LABEL_WORD) is
kept as itself; others (e.g. "Happy face") are dropped unless --label-map maps them.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path, PurePosixPath

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
from hcld.data.manifest import LABEL_WORD
from hcld.errors import DataError

REQUIRED: tuple[str, ...] = ("path", "emotion", "speaker")
OPTIONAL: tuple[str, ...] = ("session", "group", "gender", "utt_id")


def prepare_manifest_file(root: Path, out_dir: Path, *, label_map: dict[str, str | None] | None = None,
                          strict: bool = False, progress: bool = False) -> PrepareResult:
    """Read the CSV or JSONL list `root` into out_dir/manifest.parquet."""
    path = Path(root)
    if not path.is_file():
        raise DataError(f"{path}: manifest list not found (pass a .csv or .jsonl file with columns "
                        f"{', '.join(REQUIRED)} and optionally {', '.join(OPTIONAL)})")
    path = path.resolve()
    problems = Problems(strict)
    records = _read_records(path, problems)
    columns = sorted({c for _, rec in records for c in rec})
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise DataError(f"{path}: lacks column(s) {', '.join(missing)}; it has {', '.join(columns) or 'none'} "
                        f"(needed: {', '.join(REQUIRED)}; optional: {', '.join(OPTIONAL)})")

    rows = []
    for no, rec in records:
        where = f"{path}:{no}"
        empty = [c for c in REQUIRED if not rec.get(c)]
        if empty:
            problems.add(where, f"empty {', '.join(empty)}")
            continue
        gender = normal_gender(rec.get("gender"))
        if rec.get("gender") and gender is None:
            problems.add(where, f"gender {rec['gender']!r} is not F or M (female, male; empty when unknown)")
            continue
        rows.append((rec, gender))

    seen_labels = {rec["emotion"].lower() for rec, _ in rows}
    labels = apply_label_map({lab: lab for lab in seen_labels if LABEL_WORD.match(lab)}, label_map)
    dropped: Counter[str] = Counter()
    todo = []
    for rec, gender in rows:
        emotion = map_label(labels, rec["emotion"].lower(), dropped)
        if emotion is None:
            continue
        wav = Path(rec["path"])
        wav = wav if wav.is_absolute() else path.parent / wav
        todo.append(Candidate(rec.get("utt_id") or default_utt_id(rec["path"], path.parent), wav, emotion,
                              speaker=rec["speaker"], session=rec.get("session") or rec.get("group") or None,
                              gender=gender))
    return build_manifest(todo, out_dir, problems, root=path, dropped=dropped, progress=progress,
                          expected=f"rows with {', '.join(REQUIRED)} naming existing wavs")


def default_utt_id(path_text: str, folder: Path) -> str:
    """a/b/c.wav -> a_b_c: the path relative to the list's folder (an absolute path outside it: without
    its root), suffix dropped."""
    path = Path(path_text)
    if path.is_absolute():
        try:
            path = path.relative_to(folder)
        except ValueError:
            path = path.relative_to(path.anchor)
    return str(PurePosixPath(path.as_posix()).with_suffix("")).replace("/", "_")


def _read_records(path: Path, problems: Problems) -> list[tuple[int, dict[str, str]]]:
    """(line number, {column: stripped text}) of every data row."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return [(no, {str(k).strip().lower(): "" if v is None else str(v).strip() for k, v in rec.items()})
                for no, rec in jsonl_records(path, problems)]
    if suffix != ".csv":
        raise DataError(f"{path}: a manifest list is a .csv or .jsonl file (the suffix picks the format)")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            out = []
            for rec in reader:
                # A short row fills with None, a long one puts the extra cells under the key None.
                out.append((reader.line_num, {k.strip().lower(): (v or "").strip() for k, v in rec.items()
                                              if isinstance(k, str) and isinstance(v, str)}))
            return out
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot read as CSV ({err})") from err
