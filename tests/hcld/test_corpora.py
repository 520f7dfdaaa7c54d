"""The public-corpus readers, the label maps and `data prepare --corpus`, on small trees written here.

Each tree holds good files and the usual bad ones (an unparseable name, an unknown code, a file
that is not speech, a corrupt wav, an 8 kHz wav), and each test states exactly what is kept.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from test_iemocap import _break_8khz, _break_corrupt, _break_empty, write_tree

from grid.cli.data import data as data_cli
from hcld.data.corpora import CORPUS_NAMES
from hcld.data.corpora.common import apply_label_map, parse_label_map
from hcld.data.corpora.cremad import prepare_cremad
from hcld.data.corpora.emobox import prepare_emobox
from hcld.data.corpora.emodb import prepare_emodb
from hcld.data.corpora.iemocap import prepare_iemocap
from hcld.data.corpora.manifest_file import default_utt_id, prepare_manifest_file
from hcld.data.corpora.ravdess import prepare_ravdess
from hcld.data.corpora.registry import CORPORA, CORPUS_HELP, prepare_corpus
from hcld.data.folds import FOLD_SCHEMES, folds_filename
from hcld.data.manifest import MANIFEST_COLUMNS, read_manifest
from hcld.errors import DataError


def write_wav(path: Path, *, rate: int = 16000, seconds: float = 0.2, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = 0.1 * np.random.default_rng(seed).standard_normal(int(rate * seconds))
    sf.write(str(path), noise.astype(np.float32), rate, subtype="PCM_16")
    return path


def rows_of(result) -> dict[str, dict]:
    df = read_manifest(result.manifest_path)
    assert tuple(df.columns) == MANIFEST_COLUMNS
    return {r["utt_id"]: r for r in df.iter_rows(named=True)}


def skipped_names(result) -> dict[str, str]:
    """file name (or name:line) -> reason."""
    return {Path(f).name: reason for f, reason in result.skipped}


# --- label maps -------------------------------------------------------------------------------------------------

def test_parse_label_map():
    assert parse_label_map("exc=hap, fru=drop") == {"exc": "hap", "fru": None}
    assert parse_label_map("Calm=NEU") == {"calm": "neu"}
    assert parse_label_map("") == {} and parse_label_map(None) == {}
    for bad, message in [("exc", "not like exc=hap"), ("=hap", "not like"), ("exc=", "not like"),
                         ("exc=Happy Face", "not a label word"), ("exc=1st", "not a label word"),
                         ("exc=hap,exc=neu", "twice")]:
        with pytest.raises(DataError, match=message):
            parse_label_map(bad)


def test_apply_label_map_overrides_extends_and_drops():
    default = {"ang": "ang", "exc": "hap", "neu": "neu"}
    assert apply_label_map(default, None) == default
    assert apply_label_map(default, {"exc": None, "fru": "fru", "neu": "cal"}) == {
        "ang": "ang", "exc": None, "neu": "cal", "fru": "fru"}
    with pytest.raises(DataError, match="not a label word"):
        apply_label_map(default, {"exc": "Hap"})


def test_iemocap_reader_takes_a_label_map(tmp_path):
    root = write_tree(tmp_path / "root")  # test_iemocap's tree: exc x3, fru x1, oth, sur, xxx
    result = prepare_iemocap(root, tmp_path / "out", label_map=parse_label_map("exc=drop,fru=fru"))
    assert result.counts == {"ang": 3, "fru": 1, "hap": 2, "neu": 5, "sad": 3}
    assert result.dropped_labels == {"exc": 3, "oth": 1, "sur": 1, "xxx": 1}
    assert result.speaker_counts["Ses01F"] == 3 and sum(result.speaker_counts.values()) == 14


# --- RAVDESS ----------------------------------------------------------------------------------------------------

RAVDESS_GOOD = {  # file stem -> expected label
    "03-01-01-01-01-01-01": "neu", "03-01-02-01-01-01-01": "cal", "03-01-05-01-01-01-01": "ang",
    "03-01-03-01-01-01-01": "hap", "03-01-01-01-01-01-02": "neu", "03-01-02-02-01-01-02": "cal",
    "03-01-04-01-01-01-02": "sad", "03-01-06-01-01-01-02": "fea",
}


def write_ravdess(root: Path) -> Path:
    for i, stem in enumerate(RAVDESS_GOOD):
        write_wav(root / f"Actor_{stem[-2:]}" / f"{stem}.wav", rate=48000, seed=i)
    write_wav(root / "Actor_01" / "03-02-05-01-01-01-01.wav", rate=48000)  # song
    write_wav(root / "Actor_02" / "01-01-01-01-01-01-02.wav", rate=48000)  # full-AV export
    write_wav(root / "Actor_01" / "take-2.wav", rate=48000)
    write_wav(root / "Actor_02" / "03-01-09-01-01-01-02.wav", rate=48000)  # no emotion 09
    write_wav(root / "Actor_02" / "03-01-03-01-01-01-01.wav", rate=48000)  # actor 01 in Actor_02
    _break_corrupt(write_wav(root / "Actor_01" / "03-01-07-01-01-01-01.wav"))
    _break_8khz(write_wav(root / "Actor_02" / "03-01-08-01-01-01-02.wav"))
    (root / "Actor_01" / "._03-01-01-01-01-01-01.wav").write_bytes(b"\x00\x05\x16\x07")  # macOS fork: ignored
    return root


def test_ravdess(tmp_path):
    root = write_ravdess(tmp_path / "ravdess")
    result = prepare_ravdess(root, tmp_path / "out")

    assert result.counts == {"ang": 1, "cal": 2, "fea": 1, "hap": 1, "neu": 2, "sad": 1}
    assert result.speaker_counts == {"Actor_01": 4, "Actor_02": 4} and result.speakers == ["Actor_01", "Actor_02"]
    skipped = skipped_names(result)
    assert set(skipped) == {"03-02-05-01-01-01-01.wav", "01-01-01-01-01-01-02.wav", "take-2.wav",
                            "03-01-09-01-01-01-02.wav", "03-01-03-01-01-01-01.wav", "03-01-07-01-01-01-01.wav",
                            "03-01-08-01-01-01-02.wav"}
    assert "02 (song) is not 01 (speech)" in skipped["03-02-05-01-01-01-01.wav"]
    assert "modality 01 (full-AV)" in skipped["01-01-01-01-01-01-02.wav"]
    assert "seven two-digit fields" in skipped["take-2.wav"]
    assert "unknown emotion code 09" in skipped["03-01-09-01-01-01-02.wav"]
    assert "does not match its folder Actor_02" in skipped["03-01-03-01-01-01-01.wav"]
    assert "not a readable audio file" in skipped["03-01-07-01-01-01-01.wav"]
    assert "8000 Hz is below 16000 Hz" in skipped["03-01-08-01-01-01-02.wav"]
    assert len(result.converted) == 8 and all("48000 Hz, resampled" in note for _, note in result.converted)
    assert result.dropped_labels == {}

    rows = rows_of(result)
    assert {u: r["emotion"] for u, r in rows.items()} == RAVDESS_GOOD
    row = rows["03-01-04-01-01-01-02"]
    assert (row["speaker"], row["gender"], row["session"], row["sample_rate"]) == ("Actor_02", "F", None, 48000)
    assert rows["03-01-05-01-01-01-01"]["gender"] == "M"
    assert row["path"] == str((root / "Actor_02" / "03-01-04-01-01-01-02.wav").resolve())

    with pytest.raises(DataError, match="song"):
        prepare_ravdess(root, tmp_path / "strict", strict=True)


def test_ravdess_label_map_merges_calm_and_drops(tmp_path):
    root = write_ravdess(tmp_path / "ravdess")
    result = prepare_ravdess(root, tmp_path / "out", label_map=parse_label_map("cal=neu,fea=drop"))
    assert result.counts == {"ang": 1, "hap": 1, "neu": 4, "sad": 1}
    assert result.dropped_labels == {"fea": 1}
    assert "03-01-06-01-01-01-02.wav" not in skipped_names(result)  # dropped labels are counted, not named


def test_ravdess_root_errors(tmp_path):
    with pytest.raises(DataError, match="RAVDESS folder not found.*Actor_01"):
        prepare_ravdess(tmp_path / "nowhere", tmp_path / "out")
    write_ravdess(tmp_path / "download" / "Audio_Speech_Actors_01-24")
    with pytest.raises(DataError, match="no Actor_XX/.*did you mean .*Audio_Speech_Actors_01-24"):
        prepare_ravdess(tmp_path / "download", tmp_path / "out")


# --- CREMA-D ----------------------------------------------------------------------------------------------------

CREMAD_GOOD = {"1001_DFA_ANG_XX": "ang", "1001_IEO_HAP_HI": "hap", "1001_TIE_NEU_XX": "neu",
               "1002_DFA_SAD_LO": "sad", "1002_IOM_FEA_MD": "fea", "1002_IWW_DIS_XX": "dis"}


def write_cremad(folder: Path) -> Path:
    for i, stem in enumerate(CREMAD_GOOD):
        write_wav(folder / f"{stem}.wav", seed=i)
    write_wav(folder / "1002_TAI_XYZ_XX.wav")  # no emotion XYZ
    write_wav(folder / "1003-DFA-ANG.wav")
    _break_empty(write_wav(folder / "1076_MTI_SAD_XX.wav"))  # the 0-byte file of some copies
    return folder


def test_cremad_with_demographics(tmp_path):
    root = tmp_path / "CREMA-D"
    write_cremad(root / "AudioWAV")
    (root / "VideoDemographics.csv").write_text("ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n"
                                                "1002,21,Female,Caucasian,Not Hispanic\n")
    result = prepare_cremad(root, tmp_path / "out")

    assert result.counts == {"ang": 1, "dis": 1, "fea": 1, "hap": 1, "neu": 1, "sad": 1}
    assert result.speaker_counts == {"1001": 3, "1002": 3}
    skipped = skipped_names(result)
    assert set(skipped) == {"1002_TAI_XYZ_XX.wav", "1003-DFA-ANG.wav", "1076_MTI_SAD_XX.wav"}
    assert "unknown emotion code XYZ" in skipped["1002_TAI_XYZ_XX.wav"]
    assert "not like 1001_DFA_ANG_XX.wav" in skipped["1003-DFA-ANG.wav"]
    assert "empty" in skipped["1076_MTI_SAD_XX.wav"]
    rows = rows_of(result)
    assert {u: r["emotion"] for u, r in rows.items()} == CREMAD_GOOD
    assert {u: r["gender"] for u, r in rows.items()} == {u: "M" if u.startswith("1001") else "F" for u in CREMAD_GOOD}
    assert result.converted == []


def test_cremad_wavs_directly_under_root_without_demographics(tmp_path):
    root = write_cremad(tmp_path / "flat")
    result = prepare_cremad(root, tmp_path / "out", label_map={"dis": None, "fea": None})
    assert result.counts == {"ang": 1, "hap": 1, "neu": 1, "sad": 1}
    assert result.dropped_labels == {"dis": 1, "fea": 1}
    assert {r["gender"] for r in rows_of(result).values()} == {None}


def test_cremad_nothing_usable(tmp_path):
    (tmp_path / "empty" / "AudioWAV").mkdir(parents=True)
    with pytest.raises(DataError, match="no AudioWAV/1001_DFA_ANG_XX.wav"):
        prepare_cremad(tmp_path / "empty", tmp_path / "out")
    write_wav(tmp_path / "bad" / "1001_DFA_XYZ_XX.wav")
    with pytest.raises(DataError, match="no usable utterances.*unknown emotion code XYZ"):
        prepare_cremad(tmp_path / "bad", tmp_path / "out")


# --- EmoDB ------------------------------------------------------------------------------------------------------

EMODB_GOOD = {"03a01Wa": "ang", "03a01Fa": "hap", "08a01Na": "neu", "08b02Ta": "sad", "08a02La": "bor"}


def test_emodb(tmp_path):
    root = tmp_path / "emodb"
    for i, stem in enumerate(EMODB_GOOD):
        write_wav(root / "wav" / f"{stem}.wav", seed=i)
    write_wav(root / "wav" / "03a01Xa.wav")  # no emotion X
    write_wav(root / "wav" / "99a01Wa.wav")  # no speaker 99
    write_wav(root / "wav" / "03a01.wav")
    _break_corrupt(write_wav(root / "wav" / "03b01Ea.wav"))
    (root / "lablaut").mkdir()  # the rest of download.zip is not read
    result = prepare_emodb(root, tmp_path / "out")

    assert result.counts == {"ang": 1, "bor": 1, "hap": 1, "neu": 1, "sad": 1}
    assert result.speaker_counts == {"03": 2, "08": 3}
    skipped = skipped_names(result)
    assert set(skipped) == {"03a01Xa.wav", "99a01Wa.wav", "03a01.wav", "03b01Ea.wav"}
    assert "unknown emotion letter X" in skipped["03a01Xa.wav"]
    assert "speaker 99 is not one of EmoDB's" in skipped["99a01Wa.wav"]
    assert "not like 03a01Fa.wav" in skipped["03a01.wav"]
    assert "not a readable audio file" in skipped["03b01Ea.wav"]
    rows = rows_of(result)
    assert {u: r["emotion"] for u, r in rows.items()} == EMODB_GOOD
    assert {u: r["gender"] for u, r in rows.items()} == {u: "M" if u.startswith("03") else "F" for u in EMODB_GOOD}

    merged = prepare_emodb(root, tmp_path / "out2", label_map=parse_label_map("bor=neu,sad=drop"))
    assert merged.counts == {"ang": 1, "hap": 1, "neu": 2} and merged.dropped_labels == {"sad": 1}


def test_file_name_readers_name_a_file_with_several_faults_by_its_first_check(tmp_path):
    """RAVDESS and EmoDB check a name's fields in a fixed order before the label map, so a file with
    several faults is always named with the same reason, and a skipped file is not also counted as dropped."""
    ravdess = tmp_path / "ravdess"
    for i, stem in enumerate(RAVDESS_GOOD):
        write_wav(ravdess / f"Actor_{stem[-2:]}" / f"{stem}.wav", rate=48000, seed=i)
    write_wav(ravdess / "Actor_02" / "01-02-09-01-01-01-01.wav")  # full-AV, song, emotion 09, actor 01 in Actor_02
    write_wav(ravdess / "Actor_02" / "03-01-09-01-01-01-01.wav")  # emotion 09, actor 01 in Actor_02
    write_wav(ravdess / "Actor_02" / "03-01-06-01-01-01-01.wav")  # fea (dropped below), actor 01 in Actor_02
    result = prepare_ravdess(ravdess, tmp_path / "out-ravdess", label_map={"fea": None})
    assert skipped_names(result) == {
        "01-02-09-01-01-01-01.wav": "modality 01 (full-AV) is not 03 (audio-only)",
        "03-01-09-01-01-01-01.wav": "unknown emotion code 09 (known: 01, 02, 03, 04, 05, 06, 07, 08)",
        "03-01-06-01-01-01-01.wav": "actor field 01 does not match its folder Actor_02",
    }
    assert result.dropped_labels == {"fea": 1}  # the one good fea file

    emodb = tmp_path / "emodb"
    for i, stem in enumerate(EMODB_GOOD):
        write_wav(emodb / "wav" / f"{stem}.wav", seed=i)
    write_wav(emodb / "wav" / "99a01Xa.wav")  # no emotion X, no speaker 99
    write_wav(emodb / "wav" / "99a01Ta.wav")  # sad (dropped below), no speaker 99
    result = prepare_emodb(emodb, tmp_path / "out-emodb", label_map={"sad": None})
    assert skipped_names(result) == {
        "99a01Xa.wav": "unknown emotion letter X (known: W, L, E, A, F, T, N)",
        "99a01Ta.wav": "speaker 99 is not one of EmoDB's (03, 08, 09, 10, 11, 12, 13, 14, 15, 16)",
    }
    assert result.dropped_labels == {"sad": 1}


# --- EmoBox -----------------------------------------------------------------------------------------------------

def write_emobox(root: Path) -> Path:
    """An EmoBox checkout in miniature: data/cafe/ metadata, audio under downloads/cafe/."""
    meta = root / "data" / "cafe"
    meta.mkdir(parents=True)
    (meta / "label_map.json").write_text(json.dumps({"c": "Angry", "j": "Happy", "n": "Neutral", "t": "Sad",
                                                     "p": "Fear", "x": "Other"}))
    def line(key, emo, **extra):
        wav = f"downloads/cafe/{key}.wav"
        return json.dumps({"key": key, "dataset": "cafe", "wav": wav, "type": "raw", "sample_rate": 16000,
                           "task": "category", "length": 0.2, "emo": emo, "channel": 1, **extra})

    good = [("cafe-01-C-1-1", "c"), ("cafe-01-J-1-1", "j"), ("cafe-02-N-1-1", "n"), ("cafe-02-T-1-1", "t"),
            ("cafe-02-P-1-1", "p"), ("cafe-01-X-1-1", "x"), ("cafe-04-N-1-1", "n")]
    for i, (key, _) in enumerate(good):
        write_wav(root / "downloads" / "cafe" / f"{key}.wav", seed=i)
    write_wav(root / "downloads" / "cafe" / "cafe-03-J-1-2.wav", seed=9)
    lines = [line(k, e) for k, e in good] + [
        "{not json",                                          # line 8
        line("cafe-05-C-1-1", "c", type="feature"),           # line 9
        json.dumps({"key": "cafe-05-J-1-1", "wav": "x.wav"}),  # line 10: no emo
        line("cafe-01-C-1-1", "j"),                           # line 11: key again
        line("cafe-03-J-1-2", "Happy", spk="09"),             # line 12: speaker field, a word not a code
        line("cafe-06-N-1-1", "n"),                           # line 13: its wav is missing
    ]
    (meta / "cafe.jsonl").write_text("\n".join(lines) + "\n\n")
    # EmoBox's speaker list; cafe-04-N-1-1 has no line, so its speaker comes from the key.
    (meta / "data.seg.wrd.stm").write_text("".join(f"{k} 1 {k.split('-')[1]} 0 0.2 <id={k}> x\n" for k, _ in good[:6]))
    (meta / "fold_1").mkdir()
    (meta / "fold_1" / "cafe_test_fold_1.jsonl").write_text(lines[0] + "\n")  # a repeat: not read
    return meta


def test_emobox(tmp_path):
    meta = write_emobox(tmp_path / "EmoBox")
    for root in (meta, meta / "cafe.jsonl"):
        result = prepare_emobox(root, tmp_path / "out")
        assert result.counts == {"ang": 1, "fea": 1, "hap": 2, "neu": 2, "sad": 1}
        assert result.speaker_counts == {"cafe-01": 2, "cafe-02": 3, "cafe-04": 1, "cafe-09": 1}
        assert result.dropped_labels == {"other": 1}
        jsonl = meta.resolve() / "cafe.jsonl"
        skipped = dict(result.skipped)
        assert set(skipped) == {f"{jsonl}:8", f"{jsonl}:9", f"{jsonl}:10",
                                str(tmp_path.resolve() / "EmoBox/downloads/cafe/cafe-01-C-1-1.wav"),
                                str(meta.resolve() / "downloads/cafe/cafe-06-N-1-1.wav")}
        assert "not JSON" in skipped[f"{jsonl}:8"] and "type 'feature'" in skipped[f"{jsonl}:9"]
        assert "lacks emo" in skipped[f"{jsonl}:10"]
        assert "already used" in skipped[str(tmp_path.resolve() / "EmoBox/downloads/cafe/cafe-01-C-1-1.wav")]
    rows = rows_of(result)
    assert rows["cafe-02-P-1-1"]["emotion"] == "fea" and rows["cafe-03-J-1-2"]["emotion"] == "hap"
    assert rows["cafe-01-C-1-1"]["path"] == str(tmp_path.resolve() / "EmoBox/downloads/cafe/cafe-01-C-1-1.wav")

    merged = prepare_emobox(meta, tmp_path / "out2", label_map=parse_label_map("other=neu,fear=drop"))
    assert merged.counts == {"ang": 1, "hap": 2, "neu": 3, "sad": 1} and merged.dropped_labels == {"fear": 1}


def test_emobox_root_errors(tmp_path):
    with pytest.raises(DataError, match="EmoBox metadata not found"):
        prepare_emobox(tmp_path / "none.jsonl", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no \\*.jsonl files"):
        prepare_emobox(tmp_path / "empty", tmp_path / "out")


# --- a manifest list of one's own -------------------------------------------------------------------------------

SIX = ("ang", "dis", "fea", "hap", "neu", "sad")


def write_list(folder: Path, *, extra: str = "") -> Path:
    """12 utterances: 6 speakers x 2, every one of SIX twice; then a row without speaker."""
    lines = ["Path,Emotion,Speaker,Group,Gender"]
    for i in range(12):
        spk = f"s{i // 2}"
        write_wav(folder / "wavs" / spk / f"u{i}.wav", seed=i)
        lines.append(f"wavs/{spk}/u{i}.wav,{SIX[i % 6].upper()},{spk},g{i % 3},{'female' if i % 2 else 'M'}")
    lines.append("wavs/s0/u0.wav,ang,,g0,F")  # line 14: empty speaker
    path = folder / "list.csv"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def test_manifest_csv(tmp_path):
    path = write_list(tmp_path / "mine", extra="wavs/s5/u11.wav,neu,s5,g0,x\nwavs/s5/u11.wav,Happy Face,s9,g0,\n")
    result = prepare_manifest_file(path, tmp_path / "out")

    assert result.counts == {e: 2 for e in SIX}
    assert result.speaker_counts == {f"s{i}": 2 for i in range(6)}
    assert result.dropped_labels == {"happy face": 1}
    assert result.skipped == [(f"{path.resolve()}:14", "empty speaker"),
                              (f"{path.resolve()}:15", "gender 'x' is not F or M (female, male; empty when unknown)")]
    rows = rows_of(result)
    assert sorted(rows) == sorted(f"wavs_s{i // 2}_u{i}" for i in range(12))
    row = rows["wavs_s2_u5"]
    assert (row["emotion"], row["speaker"], row["session"], row["gender"]) == ("sad", "s2", "g2", "F")
    assert row["path"] == str((tmp_path / "mine" / "wavs" / "s2" / "u5.wav").resolve())


def test_manifest_jsonl_and_errors(tmp_path):
    folder = tmp_path / "mine"
    write_wav(folder / "a.wav", seed=1)
    write_wav(folder / "b.wav", seed=2)
    path = folder / "list.jsonl"
    path.write_text(json.dumps({"path": "a.wav", "emotion": "ang", "speaker": "x", "utt_id": "first"}) + "\n"
                    + json.dumps({"path": str((folder / "b.wav").resolve()), "emotion": "Neu", "speaker": "y",
                                  "session": "s1"}) + "\n")
    result = prepare_manifest_file(path, tmp_path / "out", label_map={"neu": "cal"})
    rows = rows_of(result)
    assert {u: (r["emotion"], r["session"], r["gender"]) for u, r in rows.items()} == {
        "first": ("ang", None, None), "b": ("cal", "s1", None)}

    thin = folder / "thin.csv"
    thin.write_text("file,emotion\na.wav,ang\n")
    with pytest.raises(DataError, match="thin.csv: lacks column\\(s\\) path, speaker; it has emotion, file"):
        prepare_manifest_file(thin, tmp_path / "out")
    (folder / "list.txt").write_text("path,emotion,speaker\n")
    with pytest.raises(DataError, match="is a .csv or .jsonl file"):
        prepare_manifest_file(folder / "list.txt", tmp_path / "out")
    with pytest.raises(DataError, match="manifest list not found"):
        prepare_manifest_file(folder / "none.csv", tmp_path / "out")


def test_default_utt_id(tmp_path):
    assert default_utt_id("a/b/c.wav", tmp_path) == "a_b_c"
    assert default_utt_id(str(tmp_path / "d" / "e.flac"), tmp_path) == "d_e"
    assert default_utt_id("/elsewhere/f.wav", tmp_path) == "elsewhere_f"


# --- registry and CLI -------------------------------------------------------------------------------------------

def test_registry(tmp_path):
    assert tuple(CORPORA) == CORPUS_NAMES == ("iemocap", "ravdess", "crema-d", "emodb", "emobox", "manifest")
    assert set(CORPUS_HELP) == set(CORPORA) and all("--root" in line for line in CORPUS_HELP.values())
    with pytest.raises(DataError, match="unknown corpus 'tess'; known: iemocap, ravdess, crema-d"):
        prepare_corpus("tess", tmp_path, tmp_path / "out")
    result = prepare_corpus("manifest", write_list(tmp_path / "mine"), tmp_path / "out")
    assert result.total == 12


def test_prepare_cli_on_a_manifest_list(tmp_path):
    path = write_list(tmp_path / "mine")
    out = tmp_path / "data"
    res = CliRunner().invoke(data_cli, ["prepare", "--corpus", "manifest", "--root", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "utterances: ang 2, dis 2, fea 2, hap 2, neu 2, sad 2  total 12" in lines
    assert "speakers (6): s0 2, s1 2, s2 2, s3 2, s4 2, s5 2" in lines
    assert f"  {path.resolve()}:14: empty speaker" in lines
    assert "IEMOCAP" not in res.output
    assert "speaker10 folds not written: speaker10 folds: fold(s) [6, 7, 8, 9] would have an empty test set" \
           " (6 speakers for 10 folds)" in lines
    written = {s for s in FOLD_SCHEMES if s != "speaker10"}
    assert {p.name for p in out.iterdir()} == {"manifest.parquet", *(folds_filename(s) for s in written)}
    fold_lines = [ln for ln in lines if ln.startswith("  fold ")]
    assert len(fold_lines) == 5 + 10 + 3 + 5  # random5, random10, loso (a fold per group: the session), speaker5
    sizes = Counter()
    for ln in fold_lines[:5]:  # random5: every class of the list, none of EMOTIONS' absent ones
        labels = ln.split("(")[1].rstrip(")").split()
        assert labels[::2] == list(SIX)
        sizes.update(dict(zip(labels[::2], map(int, labels[1::2]))))
    assert sizes == {e: 2 for e in SIX}


def test_prepare_cli_groups_converted_files_and_names_skipped_ones(tmp_path):
    root = write_ravdess(tmp_path / "ravdess")
    res = CliRunner().invoke(data_cli, ["prepare", "--corpus", "ravdess", "--root", str(root), "--out",
                                        str(tmp_path / "data"), "--label-map", "cal=neu"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "utterances: ang 1, fea 1, hap 1, neu 4, sad 1  total 8" in lines
    assert "speakers (2): Actor_01 4, Actor_02 4" in lines
    assert "converted on load (8 file(s)): 48000 Hz, resampled to 16000 Hz on load" in lines
    assert "  ... and 3 more" in lines
    assert "skipped 7 item(s):" in lines and "not 01 (speech)" in res.output
    assert "random10 folds not written" in res.output and "loso folds: " in res.output


def test_prepare_cli_refuses_bad_options(tmp_path):
    path = write_list(tmp_path / "mine")
    out = str(tmp_path / "data")
    runner = CliRunner()
    res = runner.invoke(data_cli, ["prepare", "--corpus", "manifest", "--root", str(path), "--out", out,
                                   "--label-map", "ang=Angry Face"])
    assert res.exit_code == 2 and "error: " in res.output and "not a label word" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "data").exists()
    res = runner.invoke(data_cli, ["prepare", "--root", str(path), "--out", out, "--label-map", "ang"])
    assert res.exit_code == 2 and "not like exc=hap" in res.output
    res = runner.invoke(data_cli, ["prepare", "--iemocap", str(path), "--root", str(path), "--out", out])
    assert res.exit_code == 2 and "not both" in res.output
    res = runner.invoke(data_cli, ["prepare", "--out", out])
    assert res.exit_code == 2 and "--root PATH" in res.output
    res = runner.invoke(data_cli, ["prepare", "--corpus", "tess", "--root", str(path), "--out", out])
    assert res.exit_code == 2 and "crema-d" in res.output
