"""Reports of swept grids: settings from the trials' configs, never pooled; the sensitivity table."""

from __future__ import annotations

import polars as pl
import pytest

from grid import report as R
from grid import trials as store
from grid.report.render.markdown import render_markdown
from grid.report.settings import memberships, read_config, swept_keys
from grid.sweeps import WILDCARD
from hcld.config import TrialConfig


def keys_of(*configs: TrialConfig):
    return [read_config(c.to_json()) for c in configs]


def test_swept_keys_are_the_fields_that_differ_where_they_are_read():
    trials = keys_of(
        TrialConfig(variant="emo_only"),  # default temperature, but it does not read it
        TrialConfig(variant="hcld", temperature=0.2, trunk="separate"),
        TrialConfig(variant="hcld", temperature=0.5, trunk="shared"),
        TrialConfig(variant="hcld", temperature=0.5, trunk="shared", backbone="lstm", threads=3),
    )
    assert swept_keys(trials) == ["trunk", "temperature"]  # not backbone (a row), not threads
    assert swept_keys(keys_of(TrialConfig(variant="emo_only", temperature=0.1), TrialConfig(variant="emo_only"))) == []


def test_a_trial_that_does_not_read_a_key_serves_every_value_of_it():
    trials = keys_of(
        TrialConfig(variant="emo_only"),
        TrialConfig(variant="multitask", trunk="separate"),
        TrialConfig(variant="hcld", temperature=0.2, trunk="separate"),
        TrialConfig(variant="hcld", temperature=0.5, trunk="separate"),
        TrialConfig(variant="hcld", temperature=0.5, trunk="shared"),
    )
    keys = swept_keys(trials)
    got = memberships(trials, keys)
    settings = [{"trunk": "separate", "temperature": 0.2}, {"trunk": "separate", "temperature": 0.5},
                {"trunk": "shared", "temperature": 0.5}]
    assert got[0] == settings  # emo_only: every setting
    assert got[1] == settings[:2]  # multitask reads the trunk only
    assert got[2] == [settings[0]] and got[4] == [settings[2]]


def test_a_trial_matching_no_complete_setting_is_kept_with_a_wildcard():
    trials = keys_of(TrialConfig(variant="multitask", trunk="separate"),
                     TrialConfig(variant="hcld", trunk="shared", temperature=0.2),
                     TrialConfig(variant="hcld", trunk="shared", temperature=0.5))
    got = memberships(trials, swept_keys(trials))
    assert got[0] == [{"trunk": "separate", "temperature": WILDCARD}]


def test_configs_written_before_the_trunk_existed_read_as_separate_encoders():
    old = TrialConfig(variant="hcld").to_dict()
    del old["trunk"], old["reduction"]
    import json

    keys = read_config(json.dumps(old))
    assert keys.values["trunk"] == "separate" and keys.values["reduction"] == "mean"
    assert read_config("not json").values == {}


# -- through the report -------------------------------------------------------------------------


def row(variant, backbone, fold, emo_ua, probe=0.3, fold_scheme="random5", **config):
    c = TrialConfig(variant=variant, backbone=backbone, epochs=3, **config)
    from hcld.losses.variants import canonical

    c = canonical(c)
    tid = f"{c.to_json()}-{fold}-{fold_scheme}"
    return {**dict.fromkeys(store.SCHEMA.names),
            "trial_id": str(abs(hash(tid))), "grid": "g", "backbone": backbone, "variant": variant, "trunk": c.trunk,
            "fold_scheme": fold_scheme, "fold": fold, "features": "fbank", "corpus": "synthetic", "epochs": 3,
            "seed": 0, "loss_impl_requested": "torch", "loss_impl": "torch", "status": "done",
            "emo_wa": emo_ua, "emo_ua": emo_ua, "spk_wa": 0.5, "spk_ua": 0.5, "probe_spk_from_xe": probe,
            "probe_emo_from_xs": 0.3, "reported_epoch": 3, "seconds": 1.0, "code_version": "v",
            "finished_at": "2026-01-01T00:00:00", "attempts": 1, "config_json": c.to_json(), "data_key": "dk",
            "artifacts": "trials/x"}


@pytest.fixture
def swept_report(tmp_path):
    rows = []
    for fold in range(5):
        rows.append(row("emo_only", "cnn", fold, 0.50 + 0.01 * fold, probe=0.40))
        for t, gain in ((0.07, -0.10), (0.5, 0.02 + 0.001 * fold)):
            rows.append(row("hcld", "cnn", fold, 0.50 + 0.01 * fold + gain, probe=0.20, temperature=t))
    (tmp_path / "g").mkdir()
    pl.DataFrame(rows, infer_schema_length=None).write_parquet(tmp_path / "g" / "trials.parquet")
    return R.build_report(tmp_path, "g", read_artifacts=False)


def test_two_settings_render_both_and_keep_their_folds_apart(swept_report):
    rep = swept_report
    assert len(rep.settings) == 2 and all("temperature=" in s for s in rep.settings)
    t2 = rep.tables["table2"]
    for s, expected in zip(sorted(rep.settings), (0.07, 0.5)):  # labels sort by value here
        hcld = t2.filter((pl.col("setting") == s) & (pl.col("variant") == "hcld") & (pl.col("backbone") == "cnn"))
        emo = t2.filter((pl.col("setting") == s) & (pl.col("variant") == "emo_only") & (pl.col("backbone") == "cnn"))
        assert hcld["n_done"].item() == 5 and emo["n_done"].item() == 5  # 5 folds, not 10: no pooling
        base = sum(0.50 + 0.01 * f for f in range(5)) / 5
        want = base - 0.10 if expected == 0.07 else base + 0.022
        assert hcld["emo_ua_mean"].item() == pytest.approx(want * 100)
        assert emo["emo_ua_mean"].item() == pytest.approx(base * 100)  # the one emo_only serves both
    text = render_markdown(rep)
    for s in rep.settings:
        assert s in text
    assert dict(rep.protocol.items)["Swept settings"] == "temperature = 0.07, 0.5"


def test_sensitivity_table_gives_paired_differences_per_setting(swept_report):
    table = swept_report.tables["sensitivity"]
    assert table.height == 2
    by_t = {("0.07" in s.split("temperature=")[1][:4]): r for s, r in
            zip(table["setting"].to_list(), table.iter_rows(named=True))}
    cold, warm = by_t[True], by_t[False]
    assert cold["mean_diff_emo_only"] == pytest.approx(-10.0) and cold["n_emo_only"] == 5
    assert warm["mean_diff_emo_only"] == pytest.approx(2.2)
    # the gains 2.0 .. 2.4 pp are consistent across folds; the corrected t is less sure than the plain one
    assert warm["p_plain_t_emo_only"] < warm["p_corr_emo_only"] < 1e-3
    assert warm["p_better_emo_only"] > 0.99  # 2.2 pp: above the 1 pp ROPE
    assert cold["n_multitask"] == 0 and cold["mean_diff_multitask"] is None  # not in this grid
    assert cold["probe_hcld"] == pytest.approx(20.0) and cold["probe_emo_only"] == pytest.approx(40.0)
    # identical differences: no t test; the Bayesian posterior is a point mass at -20 pp
    assert cold["mean_diff_probe"] == pytest.approx(-20.0) and cold["p_corr_probe"] is None
    assert (cold["p_worse_probe"], cold["p_equiv_probe"], cold["p_better_probe"]) == (1.0, 0.0, 0.0)
    assert not any(c.startswith("p_wilcoxon") for c in table.columns)  # 5 folds: it could never reach 0.05


def test_sensitivity_rows_name_settings_by_what_sets_them_apart(swept_report):
    from grid.report.sensitivity import sensitivity_rows

    headers, rows = sensitivity_rows(swept_report.tables["sensitivity"])
    assert headers[:3] == ["Setting", "Backbone", "HCLD − EMO-only UA (pp)"]
    assert sorted(r[0] for r in rows) == ["temperature=0.07", "temperature=0.5"]
    from grid.report.sensitivity import distinguishing_parts

    assert distinguishing_parts(["corpus=x temperature=0.5"]) == {
        "corpus=x temperature=0.5": "the grid's one setting (see the protocol)"}


def test_settings_of_one_fold_scheme_never_borrow_values_swept_only_in_another(tmp_path):
    rows = [row("emo_only", "cnn", f, 0.5) for f in range(5)]
    rows += [row("hcld", "cnn", f, 0.5, temperature=t) for f in range(5) for t in (0.07, 0.5)]
    rows += [row(v, "cnn", f, 0.5, fold_scheme="loso", temperature=0.5) for f in range(5) for v in ("emo_only", "hcld")]
    (tmp_path / "g").mkdir()
    pl.DataFrame(rows, infer_schema_length=None).write_parquet(tmp_path / "g" / "trials.parquet")
    settings = R.build_report(tmp_path, "g", read_artifacts=False).settings
    loso = [s for s in settings if "fold_scheme=loso" in s]
    assert len(settings) == 3 and len(loso) == 1  # loso ran temperature 0.5 only


def test_a_named_grid_shows_only_the_paper_cells_of_the_variants_it_runs(tmp_path):
    rows = [row(v, "cnn", f, 0.5) for v in ("emo_only", "multitask", "hcld") for f in range(5)]
    (tmp_path / "readings").mkdir()
    pl.DataFrame(rows, infer_schema_length=None).write_parquet(tmp_path / "readings" / "trials.parquet")
    t2 = R.build_report(tmp_path, "readings", read_artifacts=False).tables["table2"]
    assert set(t2["variant"].to_list()) == {"emo_only", "orth", "hcld", "multitask"}  # no wo_supcon / wo_lcl rows
    # LSTM and Transformer of emo_only and hcld, and all of orth, 5 folds each
    assert t2.filter(pl.col("in_paper"))["n_missing"].sum() == (2 + 2 + 3) * 5


def test_report_tables_do_not_depend_on_the_order_of_trial_rows(tmp_path):
    """Regenerating a report from the same results gives the same bytes, whatever order the trials
    finished in and whatever their ids (a new code version renames every trial): committed CSVs do
    not churn (a mean over rows in another order differs in the last bits)."""
    import random

    rng = random.Random(0)
    rows = []
    for fold in range(5):
        for variant in ("emo_only", "hcld", "orth", "multitask"):
            for backbone in ("cnn", "lstm"):
                rows.append(row(variant, backbone, fold, rng.uniform(0.3, 0.7), probe=rng.uniform(0.1, 0.9)))
    tables = []
    for attempt in range(4):
        rng.shuffle(rows)
        renamed = [{**r, "trial_id": f"{rng.getrandbits(64):016x}"} for r in rows]  # as a new code version
        (tmp_path / str(attempt) / "g").mkdir(parents=True)
        pl.DataFrame(renamed, infer_schema_length=None).write_parquet(tmp_path / str(attempt) / "g" / "trials.parquet")
        tables.append(R.build_report(tmp_path / str(attempt), "g", read_artifacts=False).tables)
    for name, first in tables[0].items():
        for other in tables[1:]:
            assert first.equals(other[name]), name
