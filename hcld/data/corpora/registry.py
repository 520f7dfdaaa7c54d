"""The corpus readers by name, for `hcld-grid data prepare --corpus NAME --root PATH`.

Every reader has the signature of `prepare_corpus` below (root, out_dir, label_map, strict,
progress) and returns a PrepareResult; its module docstring says the layout it reads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hcld.data.corpora.common import PrepareResult
from hcld.data.corpora.cremad import prepare_cremad
from hcld.data.corpora.emobox import prepare_emobox
from hcld.data.corpora.emodb import prepare_emodb
from hcld.data.corpora.iemocap import prepare_iemocap
from hcld.data.corpora.manifest_file import prepare_manifest_file
from hcld.data.corpora.ravdess import prepare_ravdess
from hcld.errors import DataError

CORPORA: dict[str, Callable[..., PrepareResult]] = {
    "iemocap": prepare_iemocap, "ravdess": prepare_ravdess, "crema-d": prepare_cremad, "emodb": prepare_emodb,
    "emobox": prepare_emobox, "manifest": prepare_manifest_file,
}

# One line per corpus: where to get it, and what --root points to (the README's table).
CORPUS_HELP: dict[str, str] = {
    "iemocap": "sail.usc.edu/iemocap (release form); --root: IEMOCAP_full_release (holds Session1 ... Session5)",
    "ravdess": "zenodo.org/record/1188976, Audio_Speech_Actors_01-24.zip; --root: the folder holding Actor_01 ... "
               "Actor_24",
    "crema-d": "github.com/CheyneyComputerScience/CREMA-D (Git LFS); --root: the checkout (holds AudioWAV/ and "
               "VideoDemographics.csv)",
    "emodb": "emodb.bilderbar.info, download.zip; --root: the unpacked folder (holds wav/)",
    "emobox": "github.com/emo-box/EmoBox metadata plus each corpus' audio; --root: data/<dataset>/<dataset>.jsonl "
              "or its folder",
    "manifest": "a list of your own; --root: a .csv or .jsonl with path, emotion, speaker "
                "[, session, gender, utt_id]",
}


def prepare_corpus(name: str, root: Path, out_dir: Path, *, label_map: dict[str, str | None] | None = None,
                   strict: bool = False, progress: bool = False) -> PrepareResult:
    """Read corpus `name` at `root` into out_dir/manifest.parquet (label_map: the user's entries over the
    reader's default map, as hcld.data.corpora.common.parse_label_map gives them)."""
    reader = CORPORA.get(name)
    if reader is None:
        raise DataError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    return reader(root, out_dir, label_map=label_map, strict=strict, progress=progress)
