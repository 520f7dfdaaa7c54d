"""The protocol block of a report: how the grid's trials were run, as (term, value) items.

Values are plain text in which `code spans` are the only markup; each renderer turns them into
its own form (Markdown keeps them, HTML makes <code>). The corpus warning is its own field so a
renderer can show it as a banner.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from grid.report import paper
from grid.report.cells import MARKERS_LEGEND, fmt_seeds
from grid.report.settings import read_config, swept_keys
from grid.report.tables import spec_folds

# Config fields that decide how the paper's ambiguous losses were read (docs: paper-notes).
INTERPRETATION_FIELDS: tuple[str, ...] = (
    "icld_negative", "icld_margin", "temperature", "supcon_embedding", "supcon_labels",
    "ensure_positives", "anchor_source", "loss_impl",
)
OPTIMISATION_FIELDS: tuple[str, ...] = ("model_size", "embed_dim", "batch_size", "lr", "warmup_epochs")


@dataclass(frozen=True)
class Protocol:
    items: list[tuple[str, str]]  # (term, value), in reading order
    corpus_warning: str | None  # set when a trial's corpus is not IEMOCAP


def _tally(values) -> str:
    """'a (3), b (1)' of the distinct values, most common first, ties by name (not by row order);
    'not recorded' if none."""
    counts = Counter("not recorded" if v is None else str(v) for v in values)
    if not counts:
        return "not recorded"
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{v} ({n})" if len(counts) > 1 else v for v, n in ranked)


def _artifact_field(grid_dir: Path, rel: str | None, key: str) -> str | None:
    if not rel:
        return None
    path = grid_dir / rel / "result.json"
    try:
        return str(json.loads(path.read_text())[key])
    except (OSError, ValueError, KeyError):
        return None


def _configs(outcomes: pl.DataFrame) -> list[dict]:
    configs = []
    for text in outcomes["config_json"].to_list():
        try:
            configs.append(json.loads(text) if text else {})
        except ValueError:
            configs.append({})
    return configs


def _swept(outcomes: pl.DataFrame) -> str:
    """Each swept key with the values its readers took, e.g. 'trunk = separate, shared' (a trial
    that does not read a key, like emo_only's temperature, serves every value and is not counted)."""
    trials = [read_config(text) for text in outcomes["config_json"].to_list()]
    keys = swept_keys(trials)
    if not keys:
        return "none (one setting)"
    values = {k: sorted({repr(t.values[k]).strip("'") for t in trials if k in t.values and k not in t.unused})
              for k in keys}
    return "; ".join(f"{k} = {', '.join(v)}" for k, v in values.items())


def _statistics(tables: dict[str, pl.DataFrame], rope: float) -> list[tuple[str, str]]:
    """How the comparisons were made: seeds per fold, the tests, the ROPE, and where the corrected
    tests' n_test/n_train came from (tallied over the comparisons that had pairs)."""
    table2 = tables["table2"].filter(pl.col("n_done") > 0)
    seeds = _tally(fmt_seeds(lo, hi) for lo, hi in zip(table2["n_seeds_min"], table2["n_seeds_max"]))
    sources = [v for t in tables.values() for c in t.columns if c.startswith("ratio_source")
               for v in t[c].to_list() if v]
    return [
        ("Seeds per fold", f"{seeds} (per cell; seeds are replicates: averaged within a fold before folds are "
         "meaned or paired; `seed sd` = mean over folds of the within-fold sample std across seeds, ddof=1)"),
        ("Statistics", "headline p: corrected resampled t-test (Nadeau & Bengio 2003; J = folds, df = J − 1), "
         "Holm-adjusted within each table's family; Bayesian correlated t-test (Benavoli et al. 2017) with "
         f"ROPE ±{rope:g} pp (`--rope`); plain paired t shown as anti-conservative; n_test/n_train from "
         + (_tally(sources) if sources else "no comparison with pairs")),
    ]


def build_protocol(raw: pl.DataFrame, outcomes: pl.DataFrame, grid: str, trials_file: Path,
                   tables: dict[str, pl.DataFrame], *, rope: float, read_artifacts: bool = True) -> Protocol:
    """`raw`: every attempt row; `outcomes`: one row per trial (before settings are assigned, so a
    trial shared by several settings is counted once); `tables`: the report's tables by section
    key (Table II's folds and seeds, the comparisons' test/train ratios)."""
    table2 = tables["table2"]
    df = outcomes
    n_done = df.filter(pl.col("status") == "done").height
    n_failed = df.filter(pl.col("status") == "failed").height
    missing = int(table2.filter(pl.col("in_paper"))["n_missing"].sum())
    retried = df.filter((pl.col("status") == "done") & (pl.col("failed_attempts") > 0)).height
    configs = _configs(df)

    def config_tally(name: str) -> str:
        text = _tally(c.get(name) for c in configs)
        return text + (" ⚠ varies across trials" if "," in text and "(" in text else "")

    corpora = df["corpus"].to_list()
    not_iemocap = sorted({c for c in corpora if c is None or not c.startswith(paper.PAPER_CORPUS)}, key=str)
    no_paper = [str(c) for c in not_iemocap if not paper.compares_with_paper(c)]  # not the synthetic stand-in
    warning = None
    if not_iemocap:
        warning = (f"CORPUS IS NOT IEMOCAP ({', '.join(map(str, not_iemocap))}): NOT the paper's setting. "
                   + (f"The paper reports IEMOCAP only: no paper numbers are shown beside {', '.join(no_paper)}."
                      if no_paper else "These numbers test the pipeline; they are not comparable with the paper's."))
    features = set(df["features"].to_list())
    folds = spec_folds(grid)
    items = [
        ("Trials table", f"`{trials_file.name}` ({raw.height} attempt rows, {df.height} trials: {n_done} done, "
         f"{n_failed} failed; {missing} of the paper's variant×backbone×fold cells missing; "
         f"{retried} done trials also have failed attempt rows: each trial counted once, from its latest done row)"),
        ("Data / corpus", f"{_tally(corpora)} (paper: IEMOCAP, 5531 utterances, 4 emotions, 10 speakers)"),
        ("Features", _tally(df["features"].to_list())
         + ("" if features == {"hubert"} else " (paper: HuBERT-base, LibriSpeech 960 h)")),
        ("Fold scheme", f"{_tally(df['fold_scheme'].to_list())}; folds seen: "
         f"{sorted(set(df['fold'].drop_nulls().to_list()))}; expected folds per cell: "
         f"{_tally(table2.unique('setting')['n_expected'].to_list())}"
         + (f" (grid `{grid}` runs folds {list(folds)})" if folds is not None else "")
         + " (paper: random 80/20, five folds)"),
        ("Epochs", f"{_tally(df['epochs'].to_list())} (paper: 100); seeds: {_tally(df['seed'].to_list())}"),
        ("Optimisation", "; ".join(f"{k} {config_tally(k)}" for k in OPTIMISATION_FIELDS)),
        ("Loss interpretation (config_json)", "; ".join(f"{k} {config_tally(k)}" for k in INTERPRETATION_FIELDS)),
        ("Swept settings", _swept(df)),
        *_statistics(tables, rope),
    ]
    if read_artifacts and n_done == 0:
        items.append(("As run (result.json)", "no done trials"))
    elif read_artifacts:
        done = df.filter(pl.col("status") == "done")
        actual = {key: [_artifact_field(trials_file.parent, rel, key) for rel in done["artifacts"].to_list()]
                  for key in ("anchor_source", "loss_impl")}
        items.append(("As run (result.json of done trials)",
                      f"anchor_source {_tally(actual['anchor_source'])}; loss_impl {_tally(actual['loss_impl'])}"))
    items += [
        ("Devices", _tally(df["device"].to_list())),
        ("Code versions", _tally(df["code_version"].to_list())),
        ("Finished", f"{df['finished_at'].min() or 'not recorded'} … {df['finished_at'].max() or 'not recorded'}"),
        ("Numbers", "percent; mean ± sample std (ddof=1) over finished folds; Δ = ours − paper in "
         f"percentage points; {MARKERS_LEGEND}."),
    ]
    return Protocol(items=items, corpus_warning=warning)
