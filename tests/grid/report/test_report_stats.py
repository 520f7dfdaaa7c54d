"""The report's statistics end to end: seeds as replicates, the corrected t as the headline,
Holm within each table's family, the Bayesian columns and their ROPE, Wilcoxon only where it can
reach 0.05, and every p column naming its test in every format."""

from __future__ import annotations

import math

import polars as pl
import pytest
from click.testing import CliRunner
from scipy import stats as sps
from test_report import find, md_table, trial, write

from grid import report as R
from grid.cli.report import report as report_cmd
from grid.report.render import write_report
from grid.report.render.markdown import render_markdown
from grid.report.settings import read_config, swept_keys
from grid.report.stats import holm
from hcld.config import TrialConfig

# Emotion UA per fold of the two variants; each fold ran two seeds at base - spread and base + spread.
HCLD_UA, HCLD_SPREAD = [0.72, 0.75, 0.70, 0.78, 0.74], 0.01
EMO_UA, EMO_SPREAD = [0.70, 0.72, 0.71, 0.74, 0.71], 0.02


def seeded_rows(folds=5, seeds=(0, 1)):
    rows = []
    for variant, base, spread in (("hcld", HCLD_UA, HCLD_SPREAD), ("emo_only", EMO_UA, EMO_SPREAD)):
        for fold in range(folds):
            for k, seed in enumerate(seeds):
                ua = base[fold % 5] + (spread if k % 2 else -spread) + (0.001 * fold if fold >= 5 else 0.0)
                rows.append(trial(variant, "cnn", fold, emo_wa=ua, emo_ua=ua, spk_wa=0.5, spk_ua=0.5, probe_xe=0.3,
                                  seed=seed, trial_id=f"{variant}-{fold}-{seed}"))
    return rows


@pytest.fixture()
def seeded(tmp_path):
    return R.build_report(write(tmp_path, seeded_rows()), "g", read_artifacts=False)


def test_seed_never_makes_a_setting(seeded):
    assert len(seeded.settings) == 1 and "seed" not in seeded.settings[0]
    configs = [read_config(TrialConfig(variant="hcld", seed=s).to_json()) for s in (0, 1, 2)]
    assert swept_keys(configs) == []  # a seed sweep is replicates, not a swept key


def test_seeds_are_averaged_within_the_fold_before_folds_are_paired(seeded):
    r = seeded.tables["significance"].filter(pl.col("metric") == "emo_ua").row(0, named=True)
    # Fold means: HCLD 72, 75, 70, 78, 74; EMO-only 70, 72, 71, 74, 71 (each seed pair averages to the base)
    # differences 2, 3, -1, 4, 3: mean 2.2, deviations -0.2, 0.8, -3.2, 1.8, 0.8, s^2 = 14.8 / 4 = 3.7
    assert r["n"] == 5  # five folds, not ten trials
    assert r["mean_diff"] == pytest.approx(2.2) and r["sd_diff"] == pytest.approx(math.sqrt(3.7))
    # seed spread: within each fold the two seeds are 2 x spread apart, sample std = spread * sqrt(2)
    assert r["seed_sd_a"] == pytest.approx(100 * HCLD_SPREAD * math.sqrt(2))
    assert r["seed_sd_b"] == pytest.approx(100 * EMO_SPREAD * math.sqrt(2))
    # corrected t with J = 5 (folds), n_test/n_train = 1/4: t = 2.2 / sqrt((1/5 + 1/4) * 3.7), df = 4
    t = 2.2 / math.sqrt(0.45 * 3.7)
    assert r["t_corr"] == pytest.approx(t) and r["p_corr"] == pytest.approx(2 * sps.t.sf(t, 4))
    assert r["p_plain_t"] == pytest.approx(sps.ttest_rel([72, 75, 70, 78, 74], [70, 72, 71, 74, 71]).pvalue)

    t2 = seeded.tables["table2"].filter((pl.col("variant") == "hcld") & (pl.col("backbone") == "cnn")).row(
        0, named=True)
    assert (t2["n_done"], t2["n_expected"], t2["n_seeds_min"], t2["n_seeds_max"]) == (5, 5, 2, 2)
    assert t2["emo_ua_mean"] == pytest.approx(73.8)
    assert t2["emo_ua_std"] == pytest.approx(100 * pl.Series(HCLD_UA).std())  # over fold means, not 10 trials
    assert t2["emo_ua_seed_sd"] == pytest.approx(100 * HCLD_SPREAD * math.sqrt(2))
    md = render_markdown(seeded)
    row = find(md_table(md, "Table II"), Type="HCLD", Model="CNN")
    assert (row["done/exp"], row["seeds/fold"], row["Emo UA (ours)"], row["seed sd#2"]) == (
        "5/5", "2", f"73.80 ± {t2['emo_ua_std']:.2f}", "1.41")
    sig = find(md_table(md, "Significance"), Backbone="CNN", Comparison="hcld vs emo_only", Metric="Emo UA")
    assert (sig["fold sd Δ"], sig["seed sd A / B"]) == ("1.92", "1.41 / 2.83")
    assert "Seeds per fold: 2 (per cell" in md


def test_uneven_seeds_and_a_failed_seed_count_folds_not_trials(tmp_path):
    rows = seeded_rows()
    rows = [r for r in rows if r["trial_id"] != "hcld-3-1"]  # fold 3 of HCLD: one seed only
    rows.append(trial("hcld", "cnn", 4, status="failed", seed=2, trial_id="hcld-4-2"))  # a third seed failed
    rep = R.build_report(write(tmp_path, rows), "g", read_artifacts=False)
    t2 = rep.tables["table2"].filter((pl.col("variant") == "hcld") & (pl.col("backbone") == "cnn")).row(
        0, named=True)
    assert (t2["n_done"], t2["n_failed"], t2["n_missing"], t2["n_seeds_min"], t2["n_seeds_max"]) == (5, 0, 0, 1, 2)
    # fold 3 is its one seed (78 - 1 = 77); the seed spread averages the four folds that have one
    assert t2["emo_ua_mean"] == pytest.approx((72 + 75 + 70 + 77 + 74) / 5)
    assert t2["emo_ua_seed_sd"] == pytest.approx(100 * HCLD_SPREAD * math.sqrt(2))
    assert find(md_table(render_markdown(rep), "Table II"), Type="HCLD", Model="CNN")["seeds/fold"] == "1–2"


def test_wilcoxon_is_dropped_at_five_folds_and_the_report_says_why(seeded, tmp_path):
    assert "p_wilcoxon" not in seeded.tables["significance"].columns
    assert not [c for c in seeded.tables["sensitivity"].columns if "wilcoxon" in c]
    notes = [n for n in seeded.notes if "Wilcoxon" in n]
    assert len(notes) == 1 and "2/2^n" in notes[0] and "0.0625" in notes[0]
    write_report(seeded, tmp_path / "out", ["md", "latex", "html", "csv"])
    for name in ("report.md", "report.tex", "report.html", "significance.csv", "sensitivity.csv"):
        text = (tmp_path / "out" / name).read_text()
        assert "p Wilcoxon" not in text and "p_wilcoxon" not in text, name
    assert "0.0625 for 5 folds" in (tmp_path / "out" / "report.md").read_text()


def test_wilcoxon_is_kept_when_a_row_can_reach_005(tmp_path):
    rep = R.build_report(write(tmp_path, seeded_rows(folds=6, seeds=(0,))), "g", read_artifacts=False)
    sig = rep.tables["significance"].filter(pl.col("metric") == "emo_ua").row(0, named=True)
    assert sig["n"] == 6 and sig["p_wilcoxon"] is not None
    assert not [n for n in rep.notes if "Wilcoxon" in n]
    headers = md_table(render_markdown(rep), "Significance")[0]
    assert "p Wilcoxon" in headers and headers["seed sd A / B"] == "1 seed"


def test_every_p_column_names_its_test_in_every_format(seeded, tmp_path):
    write_report(seeded, tmp_path / "out", ["md", "latex", "html", "csv"])
    out = tmp_path / "out"
    md, tex, page = ((out / f).read_text() for f in ("report.md", "report.tex", "report.html"))
    for text in (md, page):
        for header in ("p corrected t (Nadeau–Bengio)", "p Holm (corrected t)", "p plain t (anti-conservative)",
                       "Bayes P(Δ &gt; 1 pp)" if text is page else "Bayes P(Δ > 1 pp)"):
            assert header in text, header
    assert r"p corrected t (Nadeau--Bengio) & p Holm (corrected t) & Bayes P($\Delta$ > 1 pp)" in tex
    assert r"Bayes P($|$$\Delta$$|$ $\le$ 1 pp)" in tex and "p plain t (anti-conservative)" in tex
    for csv in ("significance.csv", "sensitivity.csv"):
        columns = pl.read_csv(out / csv).columns
        assert {c.split("_emo_only")[0] for c in columns} >= {"p_corr", "p_holm", "p_plain_t", "p_better",
                                                               "p_equiv", "p_worse"}, csv
    assert "Nadeau–Bengio corrected resampled t-test" in md and "Benavoli et al. 2017" in md


def test_holm_runs_over_each_declared_family(tmp_path):
    rows = seeded_rows()
    for fold in range(5):  # a second backbone and orth rows make families of several comparisons
        shifts = {"orth": 0.015 - 0.002 * fold, "hcld": 0.0, "emo_only": -0.01 - 0.004 * (fold % 3)}
        for variant, shift in shifts.items():
            ua = HCLD_UA[fold] + shift
            rows.append(trial(variant, "lstm", fold, emo_wa=ua + 0.003, emo_ua=ua, probe_xe=0.2 + 0.01 * fold,
                              trial_id=f"{variant}-lstm-{fold}"))
            if variant == "orth":
                rows.append(trial(variant, "cnn", fold, emo_wa=ua, emo_ua=ua - 0.01 * (fold % 2),
                                  trial_id=f"orth-cnn-{fold}"))
    rep = R.build_report(write(tmp_path, rows), "g", read_artifacts=False)
    sig = rep.tables["significance"]
    for metric in ("emo_wa", "emo_ua"):
        family = sig.filter(pl.col("metric") == metric)
        assert family.height == 4  # 2 backbones x 2 controls, one setting
        assert family["p_holm"].to_list() == pytest.approx(holm(family["p_corr"].to_list()))
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    sens = rep.tables["sensitivity"]
    gains = [(i, c) for i in range(sens.height) for c in ("emo_only", "orth") if sens[f"p_corr_{c}"][i] is not None]
    expected = multitest.multipletests([sens[f"p_corr_{c}"][i] for i, c in gains], method="holm")[1]
    assert [sens[f"p_holm_{c}"][i] for i, c in gains] == pytest.approx(list(expected))
    assert len(gains) == 4
    probes = sens["p_corr_probe"].to_list()  # their own family
    assert sens["p_holm_probe"].to_list() == pytest.approx(holm(probes))


def test_fold_sizes_give_the_ratio_when_rows_carry_them(tmp_path):
    sizes = {(v, f): {"n_train": 4000 - 10 * f, "n_test": 1000 + 10 * f} for v in ("hcld", "emo_only")
             for f in range(5)}
    rep = R.build_report(write(tmp_path, _with_sizes(sizes)), "g", read_artifacts=False)
    r = rep.tables["significance"].filter(pl.col("metric") == "emo_ua").row(0, named=True)
    ratio = sum((1000 + 10 * f) / (4000 - 10 * f) for f in range(5)) / 5  # mean over the paired folds
    assert (r["test_train_ratio"], r["ratio_source"]) == (pytest.approx(ratio), "fold sizes")
    t = 2.2 / math.sqrt((1 / 5 + ratio) * 3.7)
    assert r["t_corr"] == pytest.approx(t)
    assert "n_test/n_train from fold sizes" in render_markdown(rep)


def _with_sizes(sizes):
    rows = seeded_rows()
    for row in rows:
        row.update(sizes[(row["variant"], row["fold"])])
    return rows


def test_rope_flag_sets_the_bayesian_columns(tmp_path):
    write(tmp_path, seeded_rows())
    result = CliRunner().invoke(report_cmd, ["g", "--results-dir", str(tmp_path), "--format", "csv",
                                             "--no-figures", "--rope", "2.5"])
    assert result.exit_code == 0, result.output
    assert "Bayes P(Δ > 2.5 pp)" in result.output and "ROPE ±2.5 pp" in result.output
    sig = pl.read_csv(tmp_path / "g" / "report" / "significance.csv").filter(
        (pl.col("metric") == "emo_ua") & (pl.col("comparison") == "hcld vs emo_only"))
    assert sig["rope"].to_list() == [2.5]
    # posterior Student t: df 4, location 2.2, scale sqrt((1/5 + 1/4) * 3.7)
    scale = math.sqrt(0.45 * 3.7)
    assert sig["p_better"][0] == pytest.approx(sps.t.sf(2.5, 4, loc=2.2, scale=scale))
    assert sig["p_worse"][0] == pytest.approx(sps.t.cdf(-2.5, 4, loc=2.2, scale=scale))
    bad = CliRunner().invoke(report_cmd, ["g", "--results-dir", str(tmp_path), "--rope", "-1"])
    assert bad.exit_code == 2
