"""`hcld-grid report`: every rendered number checked against a hand computation.

The trials table below is small and written by hand; the expected cells in the comments are worked
out on paper (sample std, ddof=1), not produced by the code under test.
"""

from __future__ import annotations

import json
import math

import polars as pl
import pytest
from click.testing import CliRunner
from scipy import stats as sps

from grid import report as R
from grid import trials as store
from grid.cli.report import report as report_cmd
from grid.report.cells import MISSING, ONE_SEED, UNDEFINED
from grid.report.load import load_trials
from grid.report.render import write_report
from grid.report.render.markdown import render_markdown
from hcld.config import TrialConfig
from hcld.errors import DataError
from hcld.metrics import EMOTION_F1

NAN = float("nan")


def trial(variant, backbone, fold, *, status="done", emo_wa=None, emo_ua=None, spk_wa=None, spk_ua=None,
          probe_xe=None, probe_xs=None, emo_f1=None, finished="2026-01-01T00:00:00", trial_id=None, **setting):
    """One attempt row with the store's full schema (metrics null on a failure, as the store writes);
    columns the store adds later are null here."""
    s = {"corpus": "iemocap", "features": "hubert", "fold_scheme": "random5", "epochs": 100, "seed": 0,
         "loss_impl": "torch", **setting}
    config = TrialConfig(backbone=backbone, variant=variant, epochs=s["epochs"], seed=s["seed"],
                         loss_impl=s["loss_impl"])
    tid = trial_id or f"{variant}-{backbone}-{fold}-{s['features']}"
    return {
        **dict.fromkeys(store.SCHEMA.names),
        "trial_id": tid, "grid": "g", "backbone": backbone, "speaker_backbone": None, "variant": variant,
        "fold_scheme": s["fold_scheme"], "fold": fold, "features": s["features"], "corpus": s["corpus"],
        "epochs": s["epochs"], "seed": s["seed"], "loss_impl_requested": s["loss_impl"],
        "loss_impl": s["loss_impl"] if status == "done" else None, "status": status,
        "error": "TrialFailed: nan loss at epoch 3, batch 7" if status == "failed" else None,
        "emo_wa": emo_wa, "emo_ua": emo_ua, EMOTION_F1: emo_f1, "spk_wa": spk_wa, "spk_ua": spk_ua,
        "probe_spk_from_xe": probe_xe, "probe_emo_from_xs": probe_xs, "reported_epoch": 100, "seconds": 12.5,
        "device": "cpu", "host": "test", "code_version": "abc123", "finished_at": finished, "attempts": 1,
        "config_json": config.to_json(), "data_key": "dk", "artifacts": f"trials/{tid}",
    }


def write(tmp_path, rows, grid="g"):
    (tmp_path / grid).mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows, infer_schema_length=None).write_parquet(tmp_path / grid / "trials.parquet")
    return tmp_path


def hand_rows():
    rows = []
    # HCLD / CNN. Fold 0 was done twice: the later done row (0.70) wins over the earlier (0.10).
    rows.append(trial("hcld", "cnn", 0, emo_wa=0.10, emo_ua=0.10, spk_wa=0.10, spk_ua=0.10,
                      finished="2026-01-01T00:00:00"))
    rows.append(trial("hcld", "cnn", 0, emo_wa=0.70, emo_ua=0.72, spk_wa=0.80, spk_ua=0.79, probe_xe=0.20,
                      finished="2026-01-02T00:00:00"))
    rows.append(trial("hcld", "cnn", 1, emo_wa=0.80, emo_ua=0.78, spk_wa=NAN, spk_ua=0.79, probe_xe=0.30))
    # Fold 2: done, then a later re-run failed: the done row stays the outcome.
    rows.append(trial("hcld", "cnn", 2, emo_wa=0.75, emo_ua=0.76, spk_wa=0.70, spk_ua=0.79, probe_xe=0.25,
                      finished="2026-01-01T00:00:00"))
    rows.append(trial("hcld", "cnn", 2, status="failed", finished="2026-01-03T00:00:00"))
    # Fold 3: failed first, then done.
    rows.append(trial("hcld", "cnn", 3, status="failed", finished="2026-01-01T00:00:00"))
    rows.append(trial("hcld", "cnn", 3, emo_wa=0.75, emo_ua=0.78, spk_wa=0.75, spk_ua=0.79, probe_xe=0.25,
                      finished="2026-01-02T00:00:00"))
    # Fold 4: failed only.
    rows.append(trial("hcld", "cnn", 4, status="failed"))
    # EMO-only / CNN, folds 0-3 (no speaker head: speaker metrics undefined).
    for fold, (wa, ua) in enumerate([(0.68, 0.70), (0.74, 0.72), (0.71, 0.71), (0.71, 0.73)]):
        rows.append(trial("emo_only", "cnn", fold, emo_wa=wa, emo_ua=ua, spk_wa=NAN, spk_ua=NAN, probe_xe=0.5))
    # orth / LSTM: a single fold.
    rows.append(trial("orth", "lstm", 0, emo_wa=0.7444, emo_ua=0.75, spk_wa=0.8, spk_ua=0.8))
    # HCLD and EMO-only / LSTM on two folds: too few pairs for a test.
    rows.append(trial("hcld", "lstm", 0, emo_wa=0.76, emo_ua=0.76, spk_wa=0.8, spk_ua=0.8))
    rows.append(trial("hcld", "lstm", 1, emo_wa=0.74, emo_ua=0.74, spk_wa=0.8, spk_ua=0.8))
    rows.append(trial("emo_only", "lstm", 0, emo_wa=0.70, emo_ua=0.70, spk_wa=NAN, spk_ua=NAN))
    rows.append(trial("emo_only", "lstm", 1, emo_wa=0.71, emo_ua=0.71, spk_wa=NAN, spk_ua=NAN))
    # wo.SupCon / Transformer: two failed trials and nothing else.
    rows.append(trial("wo_supcon", "transformer", 0, status="failed"))
    rows.append(trial("wo_supcon", "transformer", 1, status="failed"))
    # A variant the paper does not have.
    rows.append(trial("icld_only", "cnn", 0, emo_wa=0.5, emo_ua=0.5, spk_wa=0.5, spk_ua=0.5))
    return rows


def md_table(md: str, title: str) -> list[dict[str, str]]:
    """Parse the first Markdown table after the heading `## <title>...` into row dicts."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## " + title))
    table = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            table.append([c.strip() for c in line.strip("|").split(" | ")])
        elif table:
            break
    header, body = table[0], table[2:]
    out = []
    for cells in body:
        row = {}
        for h, c in zip(header, cells):
            key, k = h, 2
            while key in row:  # repeated headers ("paper", "Δ") get a running suffix
                key, k = f"{h}#{k}", k + 1
            row[key] = c
        out.append(row)
    return out


def find(rows, **match):
    hits = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(hits) == 1, (match, hits)
    return hits[0]


@pytest.fixture()
def rep(tmp_path):
    return R.build_report(write(tmp_path, hand_rows()), "g")


@pytest.fixture()
def md(rep):
    return render_markdown(rep)


def test_latest_done_row_per_trial_wins(rep):
    df = rep.trials
    hcld_cnn = df.filter((pl.col("variant") == "hcld") & (pl.col("backbone") == "cnn")).sort("fold")
    assert hcld_cnn["status"].to_list() == ["done", "done", "done", "done", "failed"]
    assert hcld_cnn["emo_wa"].to_list()[:4] == [0.70, 0.80, 0.75, 0.75]
    assert hcld_cnn["failed_attempts"].to_list() == [0, 0, 1, 1, 1]


def test_table2_hcld_cnn_against_hand_computation(md):
    row = find(md_table(md, "Table II"), Type="HCLD", Model="CNN")
    # emo_wa 70, 80, 75, 75: mean 75, std sqrt((25+25+0+0)/3) = 4.0825; paper 75.52 -> -0.52
    assert row["Emo WA (ours)"] == "75.00 ± 4.08"
    assert (row["paper"], row["Δ"]) == ("75.52", "-0.52")
    # emo_ua 72, 78, 76, 78: mean 76, std sqrt((16+4+0+4)/3) = 2.828; paper 76.08 -> -0.08
    assert row["Emo UA (ours)"] == "76.00 ± 2.83"
    assert (row["paper#2"], row["Δ#2"]) == ("76.08", "-0.08")
    # spk_wa 80, NaN, 70, 75: defined on 3 folds, mean 75, std 5; paper 75.70 -> -0.70
    assert row["Spk WA (ours)"] == "75.00 ± 5.00 [n=3]"
    assert (row["paper#4"], row["Δ#4"]) == ("75.70", "-0.70")
    # spk_ua 79 on all folds: std 0; paper 75.90 -> +3.10
    assert row["Spk UA (ours)"] == "79.00 ± 0.00"
    assert (row["paper#5"], row["Δ#5"]) == ("75.90", "+3.10")
    # 4 done, the fold-4 failure counted, nothing missing of 5 (random5).
    assert (row["done/exp"], row["failed"], row["missing"]) == ("4/5", "1", "0")


def test_table2_emo_only_dashes_single_fold_failed_and_missing(md):
    rows = md_table(md, "Table II")
    emo = find(rows, Type="EMO-only", Model="CNN")
    # 68, 74, 71, 71: mean 71, std sqrt(18/3) = 2.449; paper 70.84 -> +0.16
    assert (emo["Emo WA (ours)"], emo["Δ"]) == ("71.00 ± 2.45", "+0.16")
    # 70, 72, 71, 73: mean 71.5, std sqrt(5/3) = 1.291; paper 71.61 -> -0.11
    assert (emo["Emo UA (ours)"], emo["Δ#2"]) == ("71.50 ± 1.29", "-0.11")
    # Speaker metrics undefined for every fold; the paper prints "-" and so do we.
    assert (emo["Spk WA (ours)"], emo["paper#4"], emo["Δ#4"]) == (UNDEFINED, "-", "-")
    assert (emo["done/exp"], emo["failed"], emo["missing"]) == ("4/5", "0", "1")

    orth = find(rows, Type="orth", Model="LSTM")  # one fold: no std, Δ = 74.44 - 74.44
    assert (orth["Emo WA (ours)"], orth["Δ"], orth["done/exp"], orth["missing"]) == (
        "74.44 ± n/a", "+0.00", "1/5", "4")

    failed = find(rows, Type="wo.SupCon", Model="Transformer")  # only failures: no number anywhere
    assert (failed["done/exp"], failed["failed"], failed["missing"]) == ("0/5", "2", "3")
    assert [failed[k] for k in ("Emo WA (ours)", "Δ", "Spk UA (ours)", "Δ#5")] == [MISSING] * 4
    assert (failed["paper"], failed["paper#5"]) == ("71.18", "81.69")

    never_run = find(rows, Type="wo.LCL", Model="CNN")
    assert (never_run["done/exp"], never_run["failed"], never_run["missing"]) == ("0/5", "0", "5")
    assert never_run["Emo WA (ours)"] == MISSING and never_run["paper"] == "75.88"  # not the stray 75.03

    ours_only = find(rows, Type="icld_only (ours only)", Model="CNN")
    assert (ours_only["Emo WA (ours)"], ours_only["paper"], ours_only["Δ"]) == ("50.00 ± n/a", "", "")


def test_table2_row_order_follows_the_paper_then_ours(md):
    rows = md_table(md, "Table II")
    assert [(r["Type"], r["Model"]) for r in rows[:4]] == [
        ("EMO-only", "CNN"), ("EMO-only", "LSTM"), ("EMO-only", "Transformer"), ("orth", "CNN")]
    assert [(r["Type"], r["Model"]) for r in rows[12:]] == [
        ("HCLD", "CNN"), ("HCLD", "LSTM"), ("HCLD", "Transformer"), ("icld_only (ours only)", "CNN")]
    assert not any(r["Type"] == "" for r in rows)  # the paper's stray row is not a comparison row
    assert "unlabelled CNN row (75.03" in md


def test_table2_csv_numbers(rep, tmp_path):
    write_report(rep, tmp_path / "out", ["csv"])
    t = pl.read_csv(tmp_path / "out" / "table2.csv")
    r = t.filter((pl.col("variant") == "hcld") & (pl.col("backbone") == "cnn")).row(0, named=True)
    assert r["emo_wa_mean"] == pytest.approx(75.0)
    assert r["emo_wa_std"] == pytest.approx(math.sqrt(50 / 3))
    assert r["emo_wa_diff"] == pytest.approx(75.0 - 75.52)
    assert (r["spk_wa_n"], r["n_done"], r["n_failed"], r["n_missing"], r["n_expected"]) == (3, 4, 1, 0, 5)
    missing = t.filter((pl.col("variant") == "wo_lcl") & (pl.col("backbone") == "cnn")).row(0, named=True)
    assert missing["emo_wa_mean"] is None and missing["emo_wa_paper"] == 75.88
    assert set(pl.read_csv(tmp_path / "out" / "table1.csv")["model"].to_list()) >= {"LGFA", "HCLD-CNN (ours)"}


def test_table1_quotes_baselines_and_places_ours(md):
    rows = md_table(md, "Table I:")
    lgfa = find(rows, Model="LGFA")
    assert (lgfa["Ref"], lgfa["WA (%)"], lgfa["UA (%)"]) == ("[26]", "73.29", "62.63")
    assert lgfa["Source"].startswith("quoted, not re-run")
    assert find(rows, Model="TAP")["WA (%)"] == "-"
    assert find(rows, Model="HCLD-CNN")["Source"] == "paper, Table I"
    ours = find(rows, Model="HCLD-CNN (ours)")
    assert (ours["WA (%)"], ours["UA (%)"], ours["Δ WA vs paper"], ours["Δ UA vs paper"]) == (
        "75.00 ± 4.08", "76.00 ± 2.83", "-0.52", "-0.08")
    assert ours["Source"] == "this run, 4/5 folds"
    rnn = find(rows, Model="HCLD-RNN (ours)")  # 76, 74: mean 75, std sqrt(2) = 1.414; paper 75.70
    assert (rnn["WA (%)"], rnn["Δ WA vs paper"]) == ("75.00 ± 1.41", "-0.70")
    tr = find(rows, Model="HCLD-transformers (ours)")
    assert (tr["WA (%)"], tr["Δ WA vs paper"]) == (MISSING, MISSING)


def test_significance_matches_scipy_on_the_paired_folds(rep, md):
    sig = rep.tables["significance"]
    r = sig.filter((pl.col("backbone") == "cnn") & (pl.col("comparison") == "hcld vs emo_only")
                   & (pl.col("metric") == "emo_wa")).row(0, named=True)
    hcld, emo = [70, 80, 75, 75], [68, 74, 71, 71]  # folds 0-3; fold 4 of HCLD failed
    # differences 2, 6, 4, 4: mean 4, sample std sqrt((4+4+0+0)/3) = sqrt(8/3)
    assert (r["n"], r["folds"]) == (4, "0,1,2,3")
    assert r["mean_diff"] == pytest.approx(4.0)
    assert r["cohen_dz"] == pytest.approx(4.0 / math.sqrt(8 / 3))
    assert r["p_plain_t"] == pytest.approx(sps.ttest_rel(hcld, emo).pvalue)
    # Corrected t (random5, no fold sizes recorded: n_test/n_train = 1/(5-1) = 0.25), J = 4:
    # t = 4 / sqrt((1/4 + 0.25) * 8/3) = 4 / sqrt(4/3) = 2*sqrt(3), df = 3
    assert (r["test_train_ratio"], r["ratio_source"]) == (0.25, "1/(k-1), k=5")
    assert r["t_corr"] == pytest.approx(2 * math.sqrt(3))
    assert r["p_corr"] == pytest.approx(2 * sps.t.sf(2 * math.sqrt(3), 3))
    assert "p_wilcoxon" not in sig.columns  # 4 or fewer pairs: it could never reach 0.05
    row = find(md_table(md, "Significance"), Backbone="CNN", Comparison="hcld vs emo_only", Metric="Emo WA")
    assert (row["n pairs"], row["mean Δ (pp)"], row["p corrected t (Nadeau–Bengio)"],
            row["p plain t (anti-conservative)"], row["seed sd A / B"]) == (
        "4", "+4.00", f"{2 * sps.t.sf(2 * math.sqrt(3), 3):.3g}", f"{sps.ttest_rel(hcld, emo).pvalue:.3g}", ONE_SEED)

    few = find(md_table(md, "Significance"), Backbone="LSTM", Comparison="hcld vs emo_only", Metric="Emo WA")
    assert few["n pairs"] == "2" and few["p corrected t (Nadeau–Bengio)"] == MISSING
    assert "too few pairs" in few["note"] and few["p Holm (corrected t)"] == MISSING
    none = find(md_table(md, "Significance"), Backbone="CNN", Comparison="hcld vs orth", Metric="Emo WA")
    assert (none["n pairs"], none["p corrected t (Nadeau–Bengio)"], none["note"]) == ("0", MISSING, "no paired folds")


def test_probe_table(md):
    rows = md_table(md, "Decoupling probes")
    hcld = find(rows, Type="HCLD", Model="CNN")
    # 20, 30, 25, 25: mean 25, std sqrt(50/3) = 4.08; X_s probe null in every row (never recorded, as
    # in a table older than the metric) -> missing; NaN would be undefined
    assert hcld["speaker probe on X_e (%)"] == "25.00 ± 4.08"
    assert hcld["emotion probe on X_s (%)"] == MISSING
    assert find(rows, Type="wo.LCL", Model="CNN")["speaker probe on X_e (%)"] == MISSING


def test_protocol_block(md):
    head = md.split("## Table II")[0]
    assert "NOT the paper's setting" not in head  # this table claims IEMOCAP + HuBERT
    assert "icld_negative text" in head and "icld_margin 0.0" in head and "loss_impl torch" in head
    assert "supcon_embedding xe" in head and "anchor_source auto" in head
    assert "Epochs: 100" in head and "random5" in head and "ddof=1" in head
    # 20 attempt rows; 17 trial ids; done: hcld/cnn 4, emo_only/cnn 4, orth/lstm 1, hcld/lstm 2,
    # emo_only/lstm 2, icld_only 1 = 14; failed: hcld/cnn fold 4, wo_supcon/transformer x2 = 3.
    assert "20 attempt rows, 17 trials: 14 done, 3 failed" in head
    assert "2 done trials also have failed attempt rows" in head
    # Paper cells (15 x 5 folds) with no outcome at all: emo_only 1+3+5, orth 5+4+5, wo_supcon 5+5+3,
    # wo_lcl 15, hcld 0+3+5 = 59 (failures are not "missing").
    assert "59 of the paper's variant×backbone×fold cells missing" in head


def test_synthetic_corpus_is_flagged_and_settings_are_never_pooled(tmp_path):
    rows = [trial("hcld", "cnn", f, emo_wa=0.5, emo_ua=0.5, corpus="synthetic(seed=0,n=1000)",
                  features="fbank", epochs=2) for f in range(2)]
    rows += [trial("hcld", "cnn", f, emo_wa=0.9, emo_ua=0.9, corpus="synthetic(seed=0,n=1000)",
                   features="hubert", epochs=2) for f in range(2)]
    rep = R.build_report(write(tmp_path, rows), "g")
    md = render_markdown(rep)
    assert "NOT the paper's setting" in md.split("## Protocol")[0]
    assert len(rep.settings) == 2 and "### Setting: corpus=synthetic(seed=0,n=1000) features=fbank" in md
    hcld = rep.tables["table2"].filter((pl.col("variant") == "hcld") & (pl.col("backbone") == "cnn"))
    assert sorted(hcld["emo_wa_mean"].to_list()) == pytest.approx([50.0, 90.0])  # not one pooled 70
    assert "(paper: HuBERT-base" in md


def test_named_grid_with_fewer_folds_expects_only_those(tmp_path):
    # The `smoke` grid runs fold 0 only (grid.plan): one fold is complete, not 1 of 5.
    rows = [trial("hcld", "cnn", 0, emo_wa=0.3, emo_ua=0.3)]
    rep = R.build_report(write(tmp_path, rows, grid="smoke"), "smoke")
    md = render_markdown(rep)
    row = find(md_table(md, "Table II"), Type="HCLD", Model="CNN")
    assert (row["done/exp"], row["missing"], row["Emo WA (ours)"]) == ("1/1", "0", "30.00 ± n/a")
    assert find(md_table(md, "Table II"), Type="orth", Model="CNN")["missing"] == "1"
    assert "grid `smoke` runs folds [0]" in md


def test_varying_interpretation_is_called_out(tmp_path):
    rows = [trial("hcld", "cnn", 0, emo_wa=0.5, emo_ua=0.5), trial("hcld", "cnn", 1, emo_wa=0.5, emo_ua=0.5)]
    config = json.loads(rows[1]["config_json"])
    rows[1]["config_json"] = json.dumps({**config, "icld_negative": "printed"})
    md = render_markdown(R.build_report(write(tmp_path, rows), "g"))
    assert "icld_negative printed (1), text (1) ⚠ varies across trials" in md  # a tie: by name


def test_latex_carries_the_same_cells(rep, tmp_path):
    files = write_report(rep, tmp_path / "out", ["latex", "html", "md"])
    assert [f.name for f in files] == ["report.tex", "report.html", "report.md"]
    tex = (tmp_path / "out" / "report.tex").read_text()
    assert r"HCLD & CNN & 4/5 & 1 & 0 & 1 & 75.00 $\pm$ 4.08 & 1 seed & 75.52 & -0.52" in tex
    assert r"icld\_only (ours only)" in tex and r"\begin{tabular}" in tex


def test_older_table_without_some_columns_reads_them_as_null(tmp_path):
    # Before loss_impl_requested, loss_impl held the requested implementation on every row.
    rows = [{**{k: v for k, v in r.items() if k not in ("loss_impl_requested", "spk_ua", "probe_emo_from_xs")},
             "loss_impl": "torch"} for r in hand_rows()]
    rep = R.build_report(write(tmp_path, rows), "g")
    assert rep.trials["loss_impl_requested"].null_count() == rep.trials.height
    assert rep.settings == ["corpus=iemocap features=hubert fold_scheme=random5 epochs=100 loss_impl=torch"]
    row = find(md_table(render_markdown(rep), "Table II"), Type="HCLD", Model="CNN")
    # a metric the table lacks was not recorded: missing (not undefined, not 0)
    assert (row["Emo WA (ours)"], row["Spk UA (ours)"], row["failed"]) == ("75.00 ± 4.08", MISSING, "1")


def test_columns_come_from_the_store_schema(tmp_path, monkeypatch):
    # A column the store gains is read and typed by the store's schema, and null where a row lacks it.
    import pyarrow as pa

    monkeypatch.setattr(store, "SCHEMA", store.SCHEMA.append(pa.field("swept_lr", pa.float64())))
    rows = hand_rows()
    rows[0]["swept_lr"] = 1  # an int in the file: typed as the schema says
    rep = R.build_report(write(tmp_path, rows), "g")
    assert rep.trials.schema["swept_lr"] == pl.Float64
    assert load_trials(tmp_path / "g" / "trials.parquet")["swept_lr"].to_list()[:2] == [1.0, None]


def test_a_trial_may_belong_to_several_settings(tmp_path, monkeypatch):
    # The sweep case: EMO-only does not use the swept key, so it is the baseline of both settings.
    def two_settings(outcomes):
        shared = outcomes.filter(pl.col("variant") == "emo_only")
        hcld = outcomes.filter(pl.col("variant") == "hcld")
        return pl.concat([
            shared.with_columns(setting=pl.lit("t=0.07")), shared.with_columns(setting=pl.lit("t=0.5")),
            hcld.filter(pl.col("fold") < 2).with_columns(setting=pl.lit("t=0.07")),
            hcld.filter(pl.col("fold") >= 2).with_columns(setting=pl.lit("t=0.5")),
        ])

    monkeypatch.setattr(R, "assign_settings", two_settings)
    rep = R.build_report(write(tmp_path, hand_rows()), "g")
    assert rep.settings == ["t=0.07", "t=0.5"]
    t2 = rep.tables["table2"].filter((pl.col("variant") == "emo_only") & (pl.col("backbone") == "cnn"))
    assert t2["n_done"].to_list() == [4, 4]  # the shared trials count in each setting
    sig = rep.tables["significance"].filter((pl.col("backbone") == "cnn") & (pl.col("metric") == "emo_wa")
                                            & (pl.col("comparison") == "hcld vs emo_only"))
    assert sig["folds"].to_list() == ["0,1", "2,3"]  # HCLD folds of each setting, paired with the shared ones
    # The protocol counts trials, not (trial, setting) rows.
    assert "20 attempt rows, 17 trials: 14 done, 3 failed" in render_markdown(rep)


def test_one_section_record_adds_a_table_to_every_format(rep, tmp_path):
    def n_trials(report):
        return report.trials.group_by("setting", "variant").agg(n=pl.len()).sort("setting", "variant")

    extra = R.Section("counts", "Trials per variant", build=n_trials, note="Counted from the outcomes.",
                      rows=lambda t: (["Variant", "n"], [[r["variant"], str(r["n"])] for r in t.iter_rows(named=True)]))
    rep = R.build_report(rep.grid_dir.parent, "g", sections=(*R.SECTIONS, extra))
    write_report(rep, tmp_path / "out", ["md", "latex", "csv", "html"])
    out = tmp_path / "out"
    assert find(md_table((out / "report.md").read_text(), "Trials per variant"), Variant="emo_only")["n"] == "6"
    assert r"\caption{Trials per variant}" in (out / "report.tex").read_text()
    assert pl.read_csv(out / "counts.csv")["n"].sum() == 17
    assert 'id="counts"' in (out / "report.html").read_text()


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no trials table at .*nothere"):
        R.build_report(tmp_path, "nothere")
    (tmp_path / "g").mkdir()
    pl.DataFrame({"trial_id": ["a"], "status": ["done"]}).write_parquet(tmp_path / "g" / "trials.parquet")
    with pytest.raises(DataError, match=r"trials.parquet lacks column\(s\) \['backbone'"):
        R.build_report(tmp_path, "g")
    rows = hand_rows()
    rows[0]["status"] = "running"
    write(tmp_path, rows)
    with pytest.raises(DataError, match="status must be one of done, stopped, failed, found \\['running'\\]"):
        R.build_report(tmp_path, "g")


def test_cli_prints_markdown_and_writes_formats(tmp_path):
    write(tmp_path, hand_rows())
    result = CliRunner().invoke(report_cmd, ["g", "--results-dir", str(tmp_path), "--format", "md",
                                             "--format", "csv", "--no-figures"])
    assert result.exit_code == 0, result.output
    assert "## Table II" in result.output
    assert "| HCLD | CNN | 4/5 | 1 | 0 | 1 | 75.00 ± 4.08 | 1 seed |" in result.output
    out = tmp_path / "g" / "report"
    assert sorted(p.name for p in out.iterdir()) == [
        "probes.csv", "report.md", "sensitivity.csv", "significance.csv", "table1.csv", "table2.csv"]
    assert not list(out.glob("*.png"))


def test_cli_defaults_to_grid_full_and_reports_errors_without_traceback(tmp_path):
    result = CliRunner().invoke(report_cmd, ["--results-dir", str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith("error: ")
    assert "no trials table at" in result.output and str(tmp_path / "full") in result.output
    assert "Traceback" not in result.output


def test_75_trial_grid_fills_every_paper_cell(tmp_path):
    # Speed is not asserted here (no timed unit tests): `hcld-grid report` prints its build time.
    rows = [trial(v, b, f, emo_wa=0.7, emo_ua=0.7 + f / 100, spk_wa=0.8, spk_ua=0.8, probe_xe=0.3, probe_xs=0.4)
            for v in ("emo_only", "orth", "wo_supcon", "wo_lcl", "hcld")
            for b in ("cnn", "lstm", "transformer") for f in range(5)]
    write(tmp_path, rows)
    rep = R.build_report(tmp_path, "g")
    render_markdown(rep)
    assert rep.tables["table2"].filter(pl.col("in_paper"))["n_done"].to_list() == [5] * 15


@pytest.mark.parametrize("n_classes", [4, 6])  # IEMOCAP's four; a corpus with six (CREMA-D)
def test_significance_gets_a_paired_bootstrap_interval_from_stored_predictions(tmp_path, n_classes):
    import numpy as np

    from grid.trials import PREDICTION_SCHEMA
    from hcld.metrics import macro_f1, unweighted_accuracy

    rng = np.random.default_rng(1)
    rows, preds, truth = [], [], {f: rng.integers(0, n_classes, 25) for f in range(5)}
    pooled, f1 = {}, {}
    emotions = ",".join(f"e{k}" for k in range(n_classes))
    for variant, accuracy in (("hcld", 0.9), ("emo_only", 0.5), ("orth", 0.5)):
        for f in range(5):
            true = truth[f]
            pred = np.where(rng.random(25) < accuracy, true, (true + 1) % n_classes)
            f1[variant, f] = float(macro_f1(true, pred))
            t = {**trial(variant, "cnn", f, emo_wa=0.5, emo_ua=float(unweighted_accuracy(true, pred)),
                         emo_f1=f1[variant, f]), "emotions": emotions}
            rows.append(t)
            pooled.setdefault(variant, []).append(pred)
            preds += [{"trial_id": t["trial_id"], "utt_id": f"f{f}-u{i:02d}", "emotion_true": int(true[i]),
                       "emotion_pred": int(pred[i]), "prob": [1 / n_classes] * n_classes}
                      for i in range(25)]
    write(tmp_path, rows)
    rep = R.build_report(tmp_path, "g", read_artifacts=False)
    assert rep.tables["significance"]["boot_diff"].null_count() == rep.tables["significance"].height  # no file
    pl.DataFrame(preds, schema=dict(pl.from_arrow(PREDICTION_SCHEMA.empty_table()).schema)).write_parquet(
        tmp_path / "g" / "predictions.parquet")
    sig = R.build_report(tmp_path, "g", read_artifacts=False).tables["significance"]
    ua = sig.filter((pl.col("metric") == "emo_ua") & (pl.col("comparison") == "hcld vs emo_only")).row(0, named=True)
    true = np.concatenate([truth[f] for f in range(5)])
    want = unweighted_accuracy(true, np.concatenate(pooled["hcld"])) - unweighted_accuracy(
        true, np.concatenate(pooled["emo_only"]))
    assert ua["boot_diff"] == pytest.approx(100 * want) and ua["boot_low"] > 0 and ua["boot_high"] > ua["boot_diff"]
    wa = sig.filter(pl.col("metric") == "emo_wa")
    assert wa.height == 2 and wa["boot_diff"].null_count() == 2  # UA only
    # macro-F1 is tested as WA and UA are: its own fold pairs, its own Holm family
    f1_row = sig.filter((pl.col("metric") == "emo_f1")
                        & (pl.col("comparison") == "hcld vs emo_only")).row(0, named=True)
    assert f1_row["mean_diff"] == pytest.approx(100 * np.mean([f1["hcld", f] - f1["emo_only", f] for f in range(5)]))
    assert f1_row["n"] == 5 and f1_row["p_holm"] >= f1_row["p_corr"]
