"""Turn results/<grid>/trials.parquet into the paper's tables (Polars), with the protocol on top.

Rules the numbers follow (each is tested):
- One outcome per trial_id: its latest "done" row if it has one, else its latest row (a failure).
- Cells are mean ± sample std (ddof=1) over the finished folds, in percent; Δ = ours − paper in
  percentage points. NaN metrics (undefined, e.g. speaker accuracy on unseen speakers) are left out
  of the mean and the cell says on how many folds it rests.
- A cell with no finished fold shows MISSING, never a number; failed and missing folds are counted.
- The paper's "-" stays "-"; its unlabelled stray Table II row is never compared (see grid.report.paper).
- The paper's numbers (all on IEMOCAP) are shown only beside a setting on IEMOCAP or the built-in
  synthetic stand-in of it (grid.report.paper.compares_with_paper); another corpus gets none.
- Table II shows the emotion head's macro-F1 beside WA and UA (the paper reports none: "-"); a
  trial row older than the metric did not record it, and a cell none of whose folds did shows MISSING.
- Trials in different settings (`assign_settings`) are never averaged together: each setting gets
  its own rows.

This module declares the report's sections (`SECTIONS`) and builds a Report: the trials are read
in grid.report.load, grouped into settings in grid.report.settings, the tables computed in
grid.report.tables (and .sensitivity, with the paired tests of .stats against the paper's numbers
in .paper), their cells written in grid.report.cells, the protocol in grid.report.protocol, the
figures drawn by grid.report.figures and the files written by grid.report.render.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from grid.report.cells import Rows, probe_rows, significance_rows, table1_rows, table2_rows
from grid.report.figures import Figure
from grid.report.load import latest_outcomes, load_predictions, load_trials, trials_path
from grid.report.protocol import Protocol, build_protocol
from grid.report.sensitivity import FAMILIES as SENSITIVITY_FAMILIES
from grid.report.sensitivity import sensitivity_rows, sensitivity_table
from grid.report.settings import assign_settings, setting_order
from grid.report.stats import ALPHA, DEFAULT_ROPE, MIN_PAIRS, min_wilcoxon_p
from grid.report.tables import (
    SIGNIFICANCE_FAMILIES,
    ablation_table,
    comparison_table,
    paper_settings,
    probe_table,
    significance_table,
    wilcoxon_dropped,
)
from grid.report.tune import (
    chosen_rows,
    chosen_table,
    compute_rows,
    compute_table,
    current_finals,
    expected_max_rows,
    expected_max_table,
    is_tune,
    tune_protocol_item,
    tuned_trials,
)
from grid.trials import PREDICTIONS_TABLE
from hcld.errors import DataError
from hcld.labels import EMOTIONS


@dataclass(frozen=True)
class Section:
    """One table of the report. Adding a table to every format is adding one Section to SECTIONS;
    `build` may read the tables of the sections before it (`report.tables[key]`)."""

    key: str  # key in Report.tables, CSV file stem, HTML anchor
    title: str
    build: Callable[[Report], pl.DataFrame]  # from report.trials / settings / earlier sections' tables
    rows: Callable[[pl.DataFrame], Rows]  # the frame as (headers, rows of display strings)
    note: str = ""
    per_setting: bool = True  # False: one table for the grid (its rows name their setting)
    figures: tuple[str, ...] = ()  # grid.report.figures kinds shown beside this table (HTML)


@dataclass
class Report:
    grid: str
    trials_file: Path
    settings: list[str]  # setting labels, in report order
    trials: pl.DataFrame  # one outcome per trial and setting, with `row_backbone` and `setting`
    rope: float = DEFAULT_ROPE  # ± percentage points of practical equivalence (Bayesian columns)
    predictions: pl.DataFrame | None = None  # the grid's predictions.parquet (paired bootstrap), if stored
    sections: tuple[Section, ...] = ()  # what the renderers show, in order (SECTIONS unless a caller chose)
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)  # by Section.key (numeric, percent)
    protocol: Protocol = field(default_factory=lambda: Protocol(items=[], corpus_warning=None))
    notes: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)  # filled by the caller after grid.report.figures runs
    # a tune's (grid.report.tune): one outcome per search trial, and the final trials before settings
    search: pl.DataFrame | None = None
    finals: pl.DataFrame | None = None

    @property
    def grid_dir(self) -> Path:
        return self.trials_file.parent

    def frames(self, section: Section) -> list[tuple[str | None, pl.DataFrame]]:
        """[(setting or None, rows of the section's table)]: one per setting, or a single frame
        when the section is grid-wide or the grid has one setting."""
        table = self.tables[section.key]
        if not section.per_setting or len(self.settings) == 1:
            return [(None, table)]
        return [(s, table.filter(pl.col("setting") == s)) for s in self.settings]


# What every comparison's columns mean; a table's note adds its Holm families.
COMPARISON_NOTE = (
    "Each fold is the mean of its seeds; Δ = A − B in percentage points; fold sd Δ = sample std (ddof=1) of "
    "the fold differences; seed sd A / B = mean over folds of the within-fold sample std across seeds "
    "(ddof=1). p corrected t: Nadeau–Bengio corrected resampled t-test, t = mean Δ / sqrt((1/J + "
    "n_test/n_train) s²), df = J − 1, J = paired folds, two-sided: the headline p. p Holm: that p after "
    "Holm's step-down correction within its family ({families}). Bayes P: Bayesian correlated t-test "
    "(Benavoli et al. 2017), posterior probability that Δ lies above, inside or below the region of "
    "practical equivalence ±r pp (r in the headers, `--rope`). p plain t: the ordinary paired t-test over "
    "folds, anti-conservative because the folds' training sets overlap; for comparison only. "
    f"Fewer than {MIN_PAIRS} pairs: no test."
)


def _families(families) -> str:
    return "; ".join(f.description for f in families)


SECTIONS: tuple[Section, ...] = (
    Section("table2", "Table II: ablation (emotion and speaker accuracy)",
            build=lambda r: ablation_table(r.trials, r.settings, r.grid), rows=table2_rows,
            note="Each fold is the mean of its seeds; ours = mean ± sample std over folds (fold spread); seed "
                 "sd = mean over folds of the within-fold sample std across seeds (seed spread, ddof=1). "
                 "Emo macro-F1: mean per-class F1 of the emotion head (as EmoBox reports it); the paper reports "
                 "none.",
            figures=("confusion", "curves")),
    Section("table1", "Table I: comparison with the paper and the methods it cites",
            build=lambda r: comparison_table(r.tables["table2"], r.settings), rows=table1_rows,
            note="Baseline rows are quoted from the paper's Table I with its reference numbers; they were not re-run.",
            per_setting=False),  # quoted and paper rows are shared by every setting: listed once
    Section("significance", "Significance: HCLD vs EMO-only and vs orth, paired on fold",
            build=lambda r: significance_table(r.trials, r.settings, r.rope, r.predictions),
            rows=significance_rows,
            note=COMPARISON_NOTE.format(families=_families(SIGNIFICANCE_FAMILIES))
            + " d_z = mean Δ / fold sd Δ."),
    Section("sensitivity", "Sensitivity: does HCLD help under each setting (reading of the paper)?",
            build=lambda r: sensitivity_table(r.trials, r.settings, r.rope), rows=sensitivity_rows,
            note="Per setting and backbone: HCLD's emotion UA minus each control's, and the speaker probe on X_e "
                 "of HCLD and EMO-only with their paired difference (probe Δ; lower = less speaker information "
                 "in the emotion embedding). A control that does not read a swept setting (EMO-only: trunk, "
                 "temperature) is the same trials in every setting. "
                 + COMPARISON_NOTE.format(families=_families(SENSITIVITY_FAMILIES)),
            per_setting=False),
    Section("probes", "Decoupling probes (linear probes on frozen test embeddings)",
            build=lambda r: probe_table(r.trials, r.tables["table2"]), rows=probe_rows,
            note="Speaker probe on X_e: lower means less speaker information left in the emotion embedding.",
            figures=("projection",)),
)


# A tune's report (grid.report.tune): the tuned Table II, HCLD against every control, the probes,
# then what the search did. `search` is the frame of search rows (one outcome per trial).
_by_key = {s.key: s for s in SECTIONS}
TUNE_SECTIONS: tuple[Section, ...] = (
    dataclasses.replace(  # the variants tuned, not every row of the paper's table
        _by_key["table2"], build=lambda r: ablation_table(r.trials, r.settings, r.grid).filter(
            pl.col("variant").is_in(r.trials["variant"].unique().to_list())
            & pl.col("backbone").is_in(r.trials["row_backbone"].unique().to_list()))),
    dataclasses.replace(
        _by_key["sensitivity"], title="Tuned: does HCLD beat each control when every variant had the same budget?",
        note="Each variant's configuration was chosen per outer fold on validation UA alone, from the same number of "
             "draws; the finals retrain it on the whole outer training set and test it. "
             + _by_key["sensitivity"].note),
    _by_key["probes"],
    Section("chosen", "Chosen configuration per backbone, variant and outer fold (search on validation only)",
            build=lambda r: chosen_table(r.search, r.finals), rows=chosen_rows,
            note="Chosen draw = the search trial of highest validation emotion UA (ties: the lowest draw); searched = "
                 "finished search trials it was chosen from / budget; knobs = the settings the variant searched "
                 "(grid.tune.SEARCH_SPACE). A stopped trial's validation UA is the best it reached before ASHA "
                 "stopped it."),
    Section("compute", "Compute of the search: trial-epochs run against the budget without early stopping",
            build=lambda r: compute_table(r.search), rows=compute_rows,
            note="Without early stopping every search trial runs all its epochs (budget x folds x epochs per row)."),
    Section("expected_max", "Expected best validation UA (%) against budget n (Dodge et al. 2019)",
            build=lambda r: expected_max_table(r.search), rows=expected_max_rows,
            figures=("expected_max",),
            note="E[max of n draws with replacement from the N search scores of a fold], averaged over outer folds: "
                 "the validation UA a variant would have reached with a budget of n configurations. A gap between "
                 "variants that holds at every n does not hang on the budget chosen. Stopped trials enter with the "
                 "score they reached, which can only understate them."),
)
del _by_key


# ------------------------------------------------------------------------------------------------
# Building


def build_report(results_dir: Path, grid: str, *, sections: tuple[Section, ...] = SECTIONS,
                 read_artifacts: bool = True, rope: float = DEFAULT_ROPE) -> Report:
    path = trials_path(results_dir, grid)
    raw = load_trials(path)
    if raw.is_empty():
        raise DataError(f"trials table {path} has no rows")
    search = None
    if is_tune(raw):  # the tables are the current choices' finals; the search rows feed the tune's own sections
        if sections is SECTIONS:
            sections = TUNE_SECTIONS
        search = tuned_trials(latest_outcomes(raw.filter(pl.col("stage") == "search")))
        finals = current_finals(search, tuned_trials(latest_outcomes(raw.filter(pl.col("stage") == "final"))))
        raw = raw.filter(pl.col("trial_id").is_in(finals["trial_id"].to_list()))
        if raw.is_empty():
            raise DataError(f"trials table {path}: the tune has no final trial yet (its search has not finished); "
                            f"run the same `hcld-grid tune` command again to resume it")
    outcomes = latest_outcomes(raw)
    trials = assign_settings(outcomes) if search is None else tuned_trials(outcomes)
    report = Report(grid=grid, trials_file=path, settings=setting_order(trials), trials=trials, sections=sections,
                    rope=rope, predictions=load_predictions(path.with_name(PREDICTIONS_TABLE)), search=search,
                    finals=None if search is None else trials)
    for section in sections:
        report.tables[section.key] = section.build(report)
    report.protocol = build_protocol(raw, outcomes, grid, path, report.tables, rope=rope,
                                     read_artifacts=read_artifacts)
    if search is not None:  # the finals' settings differ by the tune's choice, not by a sweep
        report.protocol = dataclasses.replace(report.protocol, items=[
            tune_protocol_item(search, trials) if name == "Swept settings" else (name, text)
            for name, text in report.protocol.items])
    dropped = [s.title.split(":")[0] for s in sections if wilcoxon_dropped(report.tables[s.key])]
    if dropped:
        report.notes.append(
            f"No Wilcoxon signed-rank column in {' and '.join(dropped)}: with n paired folds its smallest "
            f"two-sided p is 2/2^n ({min_wilcoxon_p(5):.4g} for 5 folds), so with the folds here it could not "
            f"reach {ALPHA} in any row; it is shown only when some row has enough pairs.")
    compared = paper_settings(report.trials, report.settings)
    if any(compared.values()):
        report.notes.append(
            "The paper's Table II also prints an unlabelled CNN row (75.03 / 74.27 / 74.98 / 75.01) between "
            "wo.SupCon and wo.LCL; it is kept in grid.report.paper but excluded from every comparison."
        )
    off = [s for s, on in compared.items() if not on]
    if off:
        trials = report.trials.filter(pl.col("setting").is_in(off))
        corpora = sorted({str(c) for c in trials["corpus"].to_list()})
        classes = sorted({e for e in trials["emotions"].to_list() if e}) if "emotions" in trials.columns else []
        where = "this grid" if len(off) == len(compared) else "setting(s) " + ", ".join(f"`{s}`" for s in off)
        report.notes.append(
            f"Paper: IEMOCAP only. Every number of the paper is on IEMOCAP's four classes "
            f"({', '.join(EMOTIONS)}), so none is shown beside {where} "
            f"(corpus {', '.join(corpora)}" + (f"; classes {' / '.join(classes)}" if classes else "")
            + "): no paper or Δ columns in Table II"
            + (", and Table I lists our HCLD rows only." if not any(compared.values()) else
               ", and no Δ for their rows in Table I."))
    if len(report.settings) > 1:
        report.notes.append(f"{len(report.settings)} settings in this grid are reported separately, never pooled.")
    return report
