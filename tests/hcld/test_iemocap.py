"""The IEMOCAP reader on trees written here in the release's own format, good and bad."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import soundfile as sf
from click.testing import CliRunner

from grid.cli.data import data as data_cli
from hcld.data.audio import load_clip
from hcld.data.corpora.iemocap import prepare_iemocap
from hcld.data.folds import FOLD_SCHEMES
from hcld.data.manifest import MANIFEST_COLUMNS, manifest_hash, read_manifest
from hcld.errors import DataError

# (utterance id, raw label). Two utterances per speaker and session, in several dialogs; the
# "_M" utterances of an "F" dialog belong to the male speaker of that session.
UTTERANCES = [
    ("Ses01F_impro01_F000", "neu"), ("Ses01F_impro01_M000", "exc"), ("Ses01F_impro01_F001", "fru"),
    ("Ses01F_impro01_M001", "ang"), ("Ses01M_script01_1_F000", "hap"), ("Ses01M_script01_1_M000", "sad"),
    ("Ses02F_impro02_F000", "ang"), ("Ses02F_impro02_M000", "xxx"), ("Ses02F_impro02_M001", "neu"),
    ("Ses02M_impro01_F000", "sad"), ("Ses03F_impro03_F000", "exc"), ("Ses03F_impro03_M000", "hap"),
    ("Ses03M_impro03_M001", "neu"), ("Ses03M_impro03_F001", "sur"), ("Ses04F_script02_2_F000", "sad"),
    ("Ses04F_script02_2_M000", "ang"), ("Ses04M_impro04_F000", "neu"), ("Ses05F_impro05_F000", "exc"),
    ("Ses05M_impro05_M000", "neu"), ("Ses05M_impro05_F000", "oth"),
]
# Worked out by hand from UTTERANCES: exc counts as hap; fru, xxx, sur and oth are dropped.
EXPECTED_COUNTS = {"ang": 3, "hap": 5, "neu": 5, "sad": 3}
EXPECTED_SPEAKER = {"Ses01F_impro01_M000": "Ses01M", "Ses01M_script01_1_F000": "Ses01F",
                    "Ses03M_impro03_M001": "Ses03M", "Ses02F_impro02_M001": "Ses02M"}


def write_tree(root: Path, utterances=UTTERANCES, *, seconds: float = 0.5) -> Path:
    """A release-format tree: one EmoEvaluation file per dialog (header, label and annotator lines)."""
    rng = np.random.default_rng(0)
    dialogs: dict[str, list[tuple[str, str]]] = {}
    for utt, label in utterances:
        dialogs.setdefault(utt.rsplit("_", 1)[0], []).append((utt, label))
    for dialog, utts in dialogs.items():
        session = root / f"Session{dialog[4]}"
        emo = session / "dialog" / "EmoEvaluation"
        (emo / "Categorical").mkdir(parents=True, exist_ok=True)
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        for i, (utt, label) in enumerate(utts):
            lines += [f"[{2.0 * i + 0.1234:.4f} - {2.0 * i + 1.5:.4f}]\t{utt}\t{label}\t[2.5000, 3.0000, 2.5000]",
                      "C-E2:\tNeutral;\t()", "C-E3:\tFrustration;\t(annoyed)", "A-E3:\tval 3; act 2; dom  2;\t()", ""]
            wav = session / "sentences" / "wav" / dialog / f"{utt}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(wav), (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000,
                     subtype="PCM_16")
        (emo / f"{dialog}.txt").write_text("\n".join(lines) + "\n")
        # Annotator files in subfolders and macOS resource forks must not be read as label files.
        (emo / "Categorical" / f"{dialog}_e1_cat.txt").write_text(f"[garbage line]\n{utts[0][0]} :Neutral state; ()\n")
        (emo / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07 not text [1 - 2]")
    return root


def wav_of(root: Path, utt: str) -> Path:
    return root / f"Session{utt[4]}" / "sentences" / "wav" / utt.rsplit("_", 1)[0] / f"{utt}.wav"


def test_release_format_parses_to_expected_counts(tmp_path):
    root = write_tree(tmp_path / "IEMOCAP_full_release")
    result = prepare_iemocap(root, tmp_path / "out")

    assert result.counts == EXPECTED_COUNTS
    assert result.total == 16 and result.skipped == [] and result.converted == []
    assert result.dropped_labels == {"fru": 1, "oth": 1, "sur": 1, "xxx": 1}
    assert result.speakers == [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]
    df = read_manifest(result.manifest_path)
    assert tuple(df.columns) == MANIFEST_COLUMNS
    assert df["utt_id"].to_list() == sorted(u for u, lab in UTTERANCES if lab in {"neu", "exc", "hap", "ang", "sad"})
    rows = {r["utt_id"]: r for r in df.iter_rows(named=True)}
    for utt, speaker in EXPECTED_SPEAKER.items():
        assert rows[utt]["speaker"] == speaker and rows[utt]["gender"] == speaker[-1]
        assert rows[utt]["session"] == speaker[:5]
    assert rows["Ses01F_impro01_M000"]["emotion"] == "hap"  # exc merged
    row = rows["Ses04F_script02_2_M000"]
    assert Path(row["path"]).is_absolute() and Path(row["path"]) == wav_of(root, row["utt_id"]).resolve()
    assert row["sha256"] == hashlib.sha256(Path(row["path"]).read_bytes()).hexdigest()
    assert row["duration_s"] == pytest.approx(0.5) and row["sample_rate"] == 16000
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["manifest.parquet"]  # no temp file left


def test_missing_root_names_the_folder(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        prepare_iemocap(tmp_path / "nowhere", tmp_path / "out")


def test_root_without_sessions_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no Session1"):
        prepare_iemocap(tmp_path / "empty", tmp_path / "out")
    write_tree(tmp_path / "download" / "IEMOCAP_full_release")  # one level too high: say where it is
    with pytest.raises(DataError, match="did you mean .*IEMOCAP_full_release"):
        prepare_iemocap(tmp_path / "download", tmp_path / "out")


def test_session_without_emoevaluation_is_skipped_or_fatal_in_strict(tmp_path):
    root = write_tree(tmp_path / "root")
    for f in (root / "Session2" / "dialog" / "EmoEvaluation").rglob("*"):
        if f.is_file():
            f.unlink()
    for d in sorted((root / "Session2" / "dialog" / "EmoEvaluation").rglob("*"), reverse=True):
        d.rmdir()
    (root / "Session2" / "dialog" / "EmoEvaluation").rmdir()

    result = prepare_iemocap(root, tmp_path / "out")
    assert [f for f, _ in result.skipped] == [str(root.resolve() / "Session2" / "dialog" / "EmoEvaluation")]
    assert "no dialog/EmoEvaluation" in result.skipped[0][1]
    assert not any(s.startswith("Ses02") for s in result.speakers)
    assert result.total == 16 - 3
    with pytest.raises(DataError, match="Session2/dialog/EmoEvaluation"):
        prepare_iemocap(root, tmp_path / "out2", strict=True)


def test_missing_session_folder_is_reported(tmp_path):
    root = write_tree(tmp_path / "root", [u for u in UTTERANCES if not u[0].startswith("Ses05")])
    result = prepare_iemocap(root, tmp_path / "out")
    assert result.skipped == [(str(root.resolve() / "Session5"), "session folder missing")]
    with pytest.raises(DataError, match="Session5"):
        prepare_iemocap(root, tmp_path / "out", strict=True)


def test_unparsable_label_line_names_file_and_line(tmp_path):
    root = write_tree(tmp_path / "root")
    label_file = root / "Session3" / "dialog" / "EmoEvaluation" / "Ses03F_impro03.txt"
    text = label_file.read_text().replace("[2.1234 - 3.5000]\tSes03F_impro03_M000",
                                          "[2.1234 3.5000]\tSes03F_impro03_M000")
    label_file.write_text(text)
    line_no = text.splitlines().index(next(ln for ln in text.splitlines() if "Ses03F_impro03_M000" in ln)) + 1

    result = prepare_iemocap(root, tmp_path / "out")
    assert len(result.skipped) == 1
    where, reason = result.skipped[0]
    assert where == f"{label_file.resolve()}:{line_no}" and "does not parse" in reason
    assert result.total == 15 and "Ses03F_impro03_M000" not in read_manifest(result.manifest_path)["utt_id"].to_list()
    with pytest.raises(DataError, match=f"Ses03F_impro03.txt:{line_no}"):
        prepare_iemocap(root, tmp_path / "out", strict=True)


def _break_missing(wav: Path) -> None:
    wav.unlink()


def _break_empty(wav: Path) -> None:
    wav.write_bytes(b"")


def _break_corrupt(wav: Path) -> None:
    wav.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" + bytes(range(200)))


def _break_8khz(wav: Path) -> None:
    sf.write(str(wav), np.zeros(4000, dtype=np.float32), 8000, subtype="PCM_16")


def _break_nan(wav: Path) -> None:
    samples = np.full(16000, 0.1, dtype=np.float32)
    samples[100] = np.nan
    sf.write(str(wav), samples, 16000, subtype="FLOAT")


def _break_silent(wav: Path) -> None:
    sf.write(str(wav), np.zeros(16000, dtype=np.float32), 16000, subtype="PCM_16")


@pytest.mark.parametrize("breaker, reason", [
    (_break_missing, "missing"), (_break_empty, "empty"), (_break_corrupt, "not a readable audio file"),
    (_break_8khz, "8000 Hz is below 16000 Hz"), (_break_nan, "1 NaN or infinite samples"),
    (_break_silent, "digital silence throughout"),
])
def test_bad_wav_is_skipped_with_reason_or_fatal_in_strict(tmp_path, breaker, reason):
    root = write_tree(tmp_path / "root")
    wav = wav_of(root, "Ses02F_impro02_F000")
    breaker(wav)

    result = prepare_iemocap(root, tmp_path / "out")
    assert len(result.skipped) == 1
    file, why = result.skipped[0]
    assert file == str(wav.resolve()) and reason in why
    assert result.counts == {**EXPECTED_COUNTS, "ang": 2}
    with pytest.raises(DataError, match="Ses02F_impro02_F000.wav") as err:
        prepare_iemocap(root, tmp_path / "out", strict=True)
    assert reason in str(err.value)


def test_stereo_and_44k_are_kept_and_converted_on_load(tmp_path):
    root = write_tree(tmp_path / "root")
    stereo = wav_of(root, "Ses01F_impro01_F000")
    left = np.linspace(-0.5, 0.5, 16000, dtype=np.float32)
    sf.write(str(stereo), np.stack([left, np.zeros_like(left)], axis=1), 16000, subtype="FLOAT")
    hi_rate = wav_of(root, "Ses04M_impro04_F000")
    sf.write(str(hi_rate), 0.1 * np.ones(44100, dtype=np.float32), 44100, subtype="FLOAT")

    result = prepare_iemocap(root, tmp_path / "out")
    assert result.total == 16 and result.skipped == []
    notes = dict(result.converted)
    assert "2 channels" in notes[str(stereo.resolve())] and "44100 Hz" in notes[str(hi_rate.resolve())]
    rows = {r["utt_id"]: r for r in read_manifest(result.manifest_path).iter_rows(named=True)}
    assert rows["Ses04M_impro04_F000"]["sample_rate"] == 44100
    assert rows["Ses04M_impro04_F000"]["duration_s"] == pytest.approx(1.0)
    np.testing.assert_allclose(load_clip(stereo)[:16000], left / 2, atol=1e-6)
    clip = load_clip(hi_rate)
    assert clip.shape == (120000,) and abs(len(np.flatnonzero(clip)) - 16000) < 200


def test_no_usable_utterance_is_an_error_not_an_empty_table(tmp_path):
    root = write_tree(tmp_path / "root", [("Ses01F_impro01_F000", "fru"), ("Ses01F_impro01_M000", "xxx")])
    with pytest.raises(DataError, match="no usable utterances"):
        prepare_iemocap(root, tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.parquet").exists()


def test_duplicate_and_misfiled_utterances_are_reported(tmp_path):
    root = write_tree(tmp_path / "root")
    emo = root / "Session1" / "dialog" / "EmoEvaluation"
    # Sorts after the real label files, so the original labels are the ones kept.
    (emo / "Ses01M_zz_extra.txt").write_text("[0.1 - 0.9]\tSes01F_impro01_F000\tang\t[1, 1, 1]\n"
                                             "[1.0 - 1.9]\tSes02F_impro02_F000\tang\t[1, 1, 1]\n")
    result = prepare_iemocap(root, tmp_path / "out")
    reasons = [r for _, r in result.skipped]
    assert any("already labelled" in r for r in reasons) and any("filed under Session1" in r for r in reasons)
    assert result.counts == EXPECTED_COUNTS


def test_manifest_hash_depends_on_content_not_order_or_location(tmp_path):
    df = read_manifest(prepare_iemocap(write_tree(tmp_path / "root"), tmp_path / "out").manifest_path)
    h = manifest_hash(df)
    assert manifest_hash(df.reverse()) == h
    assert manifest_hash(df.with_columns(pl.lit("/elsewhere/x.wav").alias("path"))) == h
    relabelled = df.with_columns(pl.when(pl.col("utt_id") == df["utt_id"][0]).then(pl.lit("sad"))
                                 .otherwise(pl.col("emotion")).alias("emotion"))
    assert manifest_hash(relabelled) != h
    assert manifest_hash(df.head(df.height - 1)) != h


def test_read_manifest_rejects_bad_files(tmp_path):
    with pytest.raises(DataError, match="manifest not found"):
        read_manifest(tmp_path / "none.parquet")
    pl.DataFrame({"utt_id": ["a"], "emotion": ["neu"]}).write_parquet(tmp_path / "thin.parquet")
    with pytest.raises(DataError, match="lacks columns"):
        read_manifest(tmp_path / "thin.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="junk.parquet"):
        read_manifest(tmp_path / "junk.parquet")


def test_synthetic_corpus_reads_into_ten_speakers(synth_manifest):
    df = read_manifest(synth_manifest)
    assert df.height == 120
    assert sorted(df["speaker"].unique()) == [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]
    assert (df["speaker"].str.slice(0, 5) == df["session"]).all()
    assert (df["speaker"].str.slice(5, 1) == df["gender"]).all()


def test_prepare_cli_prints_counts_and_writes_folds(tmp_path):
    root = write_tree(tmp_path / "root")
    wav_of(root, "Ses02F_impro02_F000").write_bytes(b"")
    out = tmp_path / "data"
    res = CliRunner().invoke(data_cli, ["prepare", "--iemocap", str(root), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "ang 2, hap 5, neu 5, sad 3  total 15" in res.output
    assert "hap 1636, ang 1103, sad 1084, neu 1708  total 5531" in res.output
    assert "Ses02F_impro02_F000.wav: audio file is empty" in res.output
    assert {p.name for p in out.iterdir()} == {"manifest.parquet", *(f"folds-{s}.parquet" for s in FOLD_SCHEMES)}

    res = CliRunner().invoke(data_cli, ["prepare", "--iemocap", str(root), "--out", str(out), "--strict"])
    assert res.exit_code == 2 and "error: " in res.output and "Traceback" not in res.output
    assert "Ses02F_impro02_F000.wav" in res.output
