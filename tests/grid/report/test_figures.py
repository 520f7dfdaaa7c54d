"""Report figures: written and non-empty when artifacts exist, skipped with a note when they do not."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
from click.testing import CliRunner

from grid import report as R
from grid.cli.report import report as report_cmd
from grid.report.figures import make_figures
from hcld.config import TrialConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row(variant, backbone, fold, status="done"):
    tid = f"{variant}-{backbone}-{fold}"
    done = status == "done"
    return {
        "trial_id": tid, "grid": "g", "backbone": backbone, "speaker_backbone": None, "variant": variant,
        "fold_scheme": "random5", "fold": fold, "features": "fbank", "corpus": "synthetic(seed=0,n=64)",
        "epochs": 3, "seed": 0, "loss_impl": "torch", "status": status, "error": None if done else "boom",
        "emo_wa": 0.5 if done else None, "emo_ua": 0.5 if done else None, "spk_wa": 0.4 if done else None,
        "spk_ua": 0.4 if done else None, "probe_spk_from_xe": None, "probe_emo_from_xs": None,
        "reported_epoch": 3, "seconds": 1.0, "device": "cpu", "host": "t", "code_version": "x",
        "finished_at": "2026-01-01T00:00:00", "attempts": 1,
        "config_json": TrialConfig(backbone=backbone, variant=variant, epochs=3).to_json(), "data_key": "d",
        "artifacts": f"trials/{tid}",
    }


def _artifacts(grid_dir, variant, backbone, fold, *, n=60, embeddings=True):
    rng = np.random.default_rng(fold)
    folder = grid_dir / "trials" / f"{variant}-{backbone}-{fold}"
    folder.mkdir(parents=True)
    curves = [{"epoch": e, "loss_total": 3.0 - e, "loss_emo_ce": 1.4 - 0.2 * e, "loss_spk_ce": 2.0 - 0.3 * e,
               "loss_icld": 0.3 if variant == "hcld" else 0.0, "loss_supcon": 0.0, "loss_lcl": 1.0,
               "loss_orth": 0.0, "emo_wa": 0.5, "emo_ua": 0.5, "spk_wa": 0.4, "spk_ua": 0.4, "seconds": 1.0}
              for e in (1, 2, 3)]
    result = {"metrics": {}, "curves": curves, "confusion_emotion": rng.integers(0, 9, (4, 4)).tolist(),
              "confusion_speaker": [[3]], "reported_epoch": 3, "seconds": 1.0, "device": "cpu",
              "anchor_source": "fallback:onehot", "loss_impl": "torch"}
    (folder / "result.json").write_text(json.dumps(result))
    if embeddings:
        emotion, speaker = rng.integers(0, 4, n), rng.integers(0, 10, n)
        # Like the trainer: a variant without a speaker branch stores X_s with width 0.
        width_xs = 0 if variant == "emo_only" else 8
        np.savez(folder / "embeddings.npz", xe=rng.normal(size=(n, 8)).astype(np.float16),
                 xs=rng.normal(size=(n, width_xs)).astype(np.float16), emotion=emotion, speaker=speaker)


def grid_with_artifacts(tmp_path):
    """A grid folder: CNN fully drawable, LSTM without embeddings, transformer without artifacts."""
    grid_dir = tmp_path / "g"
    grid_dir.mkdir()
    rows = []
    for variant in ("emo_only", "hcld"):
        for fold in (0, 1):
            rows.append(_row(variant, "cnn", fold))
            _artifacts(grid_dir, variant, "cnn", fold)
    # LSTM: only HCLD ran, and without embeddings; its result.json exists.
    rows.append(_row("hcld", "lstm", 0))
    _artifacts(grid_dir, "hcld", "lstm", 0, embeddings=False)
    # Transformer: a done trial whose artifacts folder is gone, and a failed one.
    rows.append(_row("hcld", "transformer", 0))
    rows.append(_row("hcld", "transformer", 1, status="failed"))
    pl.DataFrame(rows).write_parquet(grid_dir / "trials.parquet")
    return grid_dir


def test_figures_written_and_missing_inputs_skipped(tmp_path):
    grid_dir = grid_with_artifacts(tmp_path)
    rep = R.build_report(tmp_path, "g")
    out = grid_dir / "report"
    figures = make_figures(rep.trials, grid_dir, out, rep.settings)
    notes = [f.note for f in figures]
    for name in ("confusion_cnn.png", "curves_cnn.png", "projection_cnn.png", "confusion_lstm.png",
                 "curves_lstm.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
        assert f"wrote {name}" in "\n".join(notes)
    # LSTM has HCLD only: the confusion figure says which side had no data.
    assert "wrote confusion_lstm.png (no data for ['emo_only'])" in notes
    # No embeddings for LSTM, no artifacts at all for the transformer: skipped, named, no file.
    assert any(n.startswith("skipped projection_lstm.png") and "no embeddings.npz" in n for n in notes)
    assert not (out / "projection_lstm.png").exists()
    for kind in ("confusion", "curves", "projection"):
        assert any(n.startswith(f"skipped {kind}_transformer.png") for n in notes), notes
        assert not (out / f"{kind}_transformer.png").exists()
    # Each record names its file only when the file was drawn.
    assert {(f.kind, f.backbone) for f in figures if f.file} == {
        ("confusion", "cnn"), ("curves", "cnn"), ("projection", "cnn"), ("confusion", "lstm"), ("curves", "lstm")}
    assert all((out / f.file).is_file() for f in figures if f.file)


def test_unreadable_artifacts_are_skipped_not_fatal(tmp_path):
    grid_dir = grid_with_artifacts(tmp_path)
    (grid_dir / "trials" / "hcld-cnn-0" / "embeddings.npz").write_bytes(b"not a zip")
    (grid_dir / "trials" / "hcld-lstm-0" / "result.json").write_text("{broken")
    rep = R.build_report(tmp_path, "g")
    notes = [f.note for f in make_figures(rep.trials, grid_dir, grid_dir / "report", rep.settings)]
    # HCLD/CNN falls back to fold 1's embeddings; HCLD/LSTM's broken JSON skips its figures.
    assert "wrote projection_cnn.png" in notes
    assert any(n.startswith("skipped confusion_lstm.png") for n in notes)
    assert any(n.startswith("skipped curves_lstm.png") for n in notes)


def test_cli_writes_figures_and_lists_them(tmp_path):
    grid_dir = grid_with_artifacts(tmp_path)
    result = CliRunner().invoke(report_cmd, ["g", "--results-dir", str(tmp_path), "--format", "html"])
    assert result.exit_code == 0, result.output
    assert "## Figures" in result.output and "- wrote projection_cnn.png" in result.output
    assert "NOT the paper's setting" in result.output
    assert (grid_dir / "report" / "report.html").stat().st_size > 0
    assert (grid_dir / "report" / "confusion_cnn.png").read_bytes().startswith(PNG_MAGIC)
