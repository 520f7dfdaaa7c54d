"""The report of a tune (`hcld-grid tune`, rows with a `stage`): the tuned tables and what the search did.

The tables and tests of a grid run are built from the *final* rows only (each a chosen
configuration retrained on the whole outer training set and tested), all in one setting: the
configurations differ by design from fold to fold and variant to variant, so they are not settings
to report apart. The *search* rows (validation scores only) give three more sections:

- chosen: the configuration each backbone x variant x outer fold chose, its validation UA, and the
  knobs the variant searched (grid.tune.searched_knobs);
- compute: trial-epochs the search ran against budget x epochs without early stopping;
- expected best validation UA against budget n = 1..N (grid.report.stats.expected_max), per outer
  fold then averaged over folds: does a gap between variants hold at every budget, or only at some?
"""

from __future__ import annotations

import json

import polars as pl

from grid.report.cells import Rows, fmt_num
from grid.report.paper import BACKBONE_LABELS, VARIANT_LABELS
from grid.report.settings import assign_settings
from grid.report.stats import expected_max
from grid.trials import FINISHED
from grid.tune import SEARCH_SPACE, SELECTION_METRIC, best_draw, searched_knobs
from hcld.config import TrialConfig

GROUP = ("setting", "variant", "row_backbone", "outer_fold")  # what one search chooses for


def is_tune(raw: pl.DataFrame) -> bool:
    """Whether a trials table holds a tune's rows (grid.trials.STAGES) rather than a grid run's."""
    return "stage" in raw.columns and raw["stage"].drop_nulls().len() > 0


def tuned_trials(outcomes: pl.DataFrame) -> pl.DataFrame:
    """A tune's trials, one setting per corpus/features/folds/epochs and " tuned": the chosen
    configurations differ by design, so they are not settings to report apart."""
    labelled = assign_settings(outcomes.with_columns(config_json=pl.lit(None, dtype=pl.String)))
    assert labelled.height == outcomes.height  # one setting each: the rows keep their order
    return labelled.with_columns(setting=pl.col("setting") + " tuned", config_json=outcomes["config_json"])


def current_finals(search: pl.DataFrame, finals: pl.DataFrame) -> pl.DataFrame:
    """The final trials of each group's choice from the search rows the store holds (grid.tune.best_draw
    over every finished draw): finals of an earlier, smaller budget that chose another draw are left out."""
    finished = search.filter(pl.col("status").is_in(FINISHED) & pl.col(SELECTION_METRIC).is_not_null())
    chosen = []
    for key, group in finished.group_by(GROUP, maintain_order=True):
        draw = best_draw(dict(zip(group["draw"].to_list(), group[SELECTION_METRIC].to_list())))
        chosen.append(dict(zip(GROUP, key)) | {"draw": draw})
    if not chosen:
        return finals.clear()
    return finals.join(pl.DataFrame(chosen, schema={**{k: finals.schema[k] for k in GROUP}, "draw": pl.Int64}),
                       on=[*GROUP, "draw"], how="semi")


def _knob_text(config_json: str | None) -> str:
    if not config_json:
        return ""
    config = TrialConfig.from_dict(json.loads(config_json))
    return ", ".join(f"{k.name}={getattr(config, k.name):g}" for k in searched_knobs(config))


def chosen_table(search: pl.DataFrame, finals: pl.DataFrame) -> pl.DataFrame:
    """One row per backbone x variant x outer fold: the chosen draw, its validation UA, how many
    search trials it was chosen from, its knobs, and the finals' test UA (mean over seeds)."""
    finished = search.filter(pl.col("status").is_in(FINISHED))
    searched = finished.group_by(GROUP).agg(searched=pl.len(), budget=pl.col("draw").max() + 1)
    per_final = finals.filter(pl.col("status") == "done").group_by(GROUP).agg(
        draw=pl.col("draw").first(), seeds=pl.len(), test_emo_ua=pl.col("emo_ua").mean(),
        config_json=pl.col("config_json").sort_by("seed").first())
    scores = finished.select(*GROUP, "draw", val_emo_ua=pl.col(SELECTION_METRIC))
    table = (per_final.join(scores, on=[*GROUP, "draw"], how="left").join(searched, on=list(GROUP), how="left")
             .sort("setting", "row_backbone", "variant", "outer_fold"))
    return table.with_columns(knobs=pl.col("config_json").map_elements(_knob_text, return_dtype=pl.String))


def chosen_rows(t: pl.DataFrame) -> Rows:
    headers = ["Backbone", "Variant", "Outer fold", "Chosen draw", "val UA (%)", "searched",
               "test UA (%), mean of seeds", "knobs"]
    rows = [[BACKBONE_LABELS.get(r["row_backbone"], r["row_backbone"]), VARIANT_LABELS.get(r["variant"], r["variant"]),
             str(r["outer_fold"]), str(r["draw"]), fmt_num(_pct(r["val_emo_ua"])),
             f"{r['searched']}/{r['budget']}" if r["searched"] is not None else "—",
             f"{fmt_num(_pct(r['test_emo_ua']))} ({r['seeds']} seed{'' if r['seeds'] == 1 else 's'})", r["knobs"]]
            for r in t.iter_rows(named=True)]
    return headers, rows


def compute_table(search: pl.DataFrame) -> pl.DataFrame:
    """Trial-epochs of the search per backbone x variant, against all trials running every epoch."""
    finished = search.filter(pl.col("status").is_in(FINISHED))
    return (finished.group_by("setting", "variant", "row_backbone")
            .agg(trials=pl.len(), stopped=(pl.col("status") == "stopped").sum(),
                 epochs_run=pl.col("epochs_run").sum(), full=pl.col("epochs").sum(), seconds=pl.col("seconds").sum())
            .with_columns(saved=1 - pl.col("epochs_run") / pl.col("full"))
            .sort("setting", "row_backbone", "variant"))


def compute_rows(t: pl.DataFrame) -> Rows:
    headers = ["Backbone", "Variant", "search trials", "stopped early", "trial-epochs run",
               "trial-epochs without early stopping", "saved", "search wall (trial-seconds)"]
    rows = [[BACKBONE_LABELS.get(r["row_backbone"], r["row_backbone"]), VARIANT_LABELS.get(r["variant"], r["variant"]),
             str(r["trials"]), str(r["stopped"]), str(r["epochs_run"]), str(r["full"]), f"{100 * r['saved']:.0f}%",
             f"{r['seconds']:.0f}"] for r in t.iter_rows(named=True)]
    if t.height:
        run, full = int(t["epochs_run"].sum()), int(t["full"].sum())
        rows.append(["all", "", str(int(t["trials"].sum())), str(int(t["stopped"].sum())), str(run), str(full),
                     f"{100 * (1 - run / full):.0f}%", f"{t['seconds'].sum():.0f}"])
    return headers, rows


def expected_max_table(search: pl.DataFrame) -> pl.DataFrame:
    """Long format: per backbone x variant and budget n, the expected best validation UA (%) of n
    draws, averaged over outer folds (each fold's from its own search scores), its spread over
    folds (sample std), and the folds it rests on. n runs to the fewest finished draws of a fold."""
    finished = search.filter(pl.col("status").is_in(FINISHED) & pl.col(SELECTION_METRIC).is_not_null())
    rows = []
    for (setting, variant, backbone), cell in finished.group_by(GROUP[:-1], maintain_order=True):
        per_fold = [g[SELECTION_METRIC].to_list() for _, g in cell.group_by("outer_fold", maintain_order=True)]
        for n in range(1, min(len(s) for s in per_fold) + 1):
            values = pl.Series([100 * expected_max(s, n) for s in per_fold])
            rows.append({"setting": setting, "variant": variant, "row_backbone": backbone, "n": n,
                         "expected_best": values.mean(), "sd_folds": values.std() if len(values) > 1 else None,
                         "folds": len(values)})
    schema = {"setting": pl.String, "variant": pl.String, "row_backbone": pl.String, "n": pl.Int64,
              "expected_best": pl.Float64, "sd_folds": pl.Float64, "folds": pl.Int64}
    return pl.DataFrame(rows, schema=schema).sort("setting", "row_backbone", "variant", "n")


def expected_max_rows(t: pl.DataFrame) -> Rows:
    budgets = sorted(set(t["n"].to_list()))
    headers = ["Backbone", "Variant", "folds", *[f"n={n}" for n in budgets]]
    rows = []
    for (_, variant, backbone), cell in t.group_by(GROUP[:-1], maintain_order=True):
        by_n = dict(zip(cell["n"].to_list(), cell["expected_best"].to_list()))
        rows.append([BACKBONE_LABELS.get(backbone, backbone), VARIANT_LABELS.get(variant, variant),
                     str(cell["folds"][0]), *[fmt_num(by_n.get(n)) for n in budgets]])
    return headers, rows


def _pct(x: float | None) -> float | None:
    return None if x is None else 100 * x


def tune_protocol_item(search: pl.DataFrame, finals: pl.DataFrame) -> tuple[str, str]:
    """What the tune did, for the protocol (it stands where a grid run lists its swept settings)."""
    finished = search.filter(pl.col("status").is_in(FINISHED))
    budget = int(finished["draw"].max()) + 1 if finished.height else 0
    stopped = finished.filter(pl.col("status") == "stopped").height
    seeds = sorted(set(finals["seed"].to_list()))
    knobs = "; ".join(k.describe() for k in SEARCH_SPACE)
    return ("Tune", f"per backbone x variant x outer fold, budget N = {budget} seeded random draws of the search "
            f"space ({knobs}), each variant searching the knobs it reads (the others at the paper's value); search "
            f"trials train on the outer training set minus a validation part and are scored on it only "
            f"({search.height} search trials: {stopped} stopped early by ASHA, {finished.height - stopped} ran every "
            f"epoch); the draw of best validation emotion UA (ties: the lowest) is retrained on the whole outer "
            f"training set with seeds {', '.join(map(str, seeds))} and tested once (the tables above the search's "
            f"own are these finals); the values chosen are in the 'Chosen configuration' table")
