"""Which trials of a table are comparable: the report's settings, from the trials' own configs.

A setting is one value of every SETTING_FIELDS column and of every *swept* key: a TrialConfig
field whose value differs between trials that read it (`hcld.losses.variants.unused_settings`
says which fields a trial reads). Row axes (backbone, variant), the replicate axis (`seed`: the
seeds of one fold are replicates, averaged within the fold by grid.report.tables.fold_means) and
execution-only fields (threads, device, feature placement) never make a setting. A trial that does not read a swept
key belongs to every setting that agrees on the keys it does read (grid.sweeps' wildcard rule):
emo_only, run once, is the EMO-only row of every temperature. Nothing else is ever pooled: two
trials share a setting only if every key they both read is equal. `assign_settings` is the one
place that labels trials with their settings; every table and figure groups by that label.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import polars as pl

from grid.sweeps import WILDCARD, serves, setting_label, swept_values
from hcld.config import TrialConfig
from hcld.errors import ConfigError
from hcld.losses.variants import unused_settings

ROW_AXES = ("backbone", "variant", "speaker_backbone")  # rows of the tables, not settings
REPLICATE_AXES = ("seed",)  # replicates within a fold (a `--seeds N` sweep): averaged, not settings
EXECUTION_FIELDS = ("threads", "device", "feature_placement")  # cannot change what is computed
# Trials that differ in any of these are different experiments and are never pooled; each is read
# from the first of its columns the table has a value in. loss_impl is the one asked for (a failed
# trial has no loss_impl that ran); older tables have only loss_impl.
SETTING_FIELDS: dict[str, tuple[str, ...]] = {
    "corpus": ("corpus",), "features": ("features",), "fold_scheme": ("fold_scheme",), "epochs": ("epochs",),
    "loss_impl": ("loss_impl_requested", "loss_impl"),
}


@dataclasses.dataclass(frozen=True)
class TrialKeys:
    """A trial's values of the candidate keys, and which of them it does not read; `config` is
    None when its config_json could not be read (it then reads no key)."""

    values: dict[str, Any]
    unused: frozenset[str]
    config: TrialConfig | None = None

    def swept(self, keys: list[str]) -> dict[str, Any]:
        """Its value of each swept key, WILDCARD where it does not read the key (grid.sweeps)."""
        return swept_values(self.config, keys) if self.config is not None else dict.fromkeys(keys, WILDCARD)


def read_config(text: str | None) -> TrialKeys:
    """Parse a row's config_json. Rows written before a field existed get its default, except
    `trunk`: the model had separate encoders until the field was added. An unreadable config
    reads no key (it then shares a setting with anything that agrees on the row columns)."""
    try:
        values = json.loads(text) if text else {}
        known = {f.name for f in dataclasses.fields(TrialConfig)}
        values = {k: v for k, v in values.items() if k in known}
        if values and "trunk" not in values:
            values["trunk"] = "separate"
        config = TrialConfig.from_dict(values)
    except (ValueError, TypeError, ConfigError):
        return TrialKeys({}, frozenset(f.name for f in dataclasses.fields(TrialConfig)))
    return TrialKeys(config.to_dict(), unused_settings(config), config)


def swept_keys(trials: list[TrialKeys]) -> list[str]:
    """Config fields (TrialConfig order) whose values differ between trials that read them."""
    skip = set(ROW_AXES) | set(REPLICATE_AXES) | set(EXECUTION_FIELDS)
    keys = []
    for f in dataclasses.fields(TrialConfig):
        if f.name in skip:
            continue
        seen = {json.dumps(t.values[f.name]) for t in trials if f.name in t.values and f.name not in t.unused}
        if len(seen) > 1:
            keys.append(f.name)
    return keys


def memberships(trials: list[TrialKeys], keys: list[str]) -> list[list[dict[str, Any]]]:
    """For each trial, the settings ({key: value}) it belongs to. The settings are the value
    combinations of the trials that read every key; a trial reading fewer keys joins each one
    that it serves. A trial that serves none gets its own, with WILDCARD where it does not read
    a key (so it is shown, never dropped)."""
    complete: list[dict[str, Any]] = []
    for t in trials:
        combo = t.swept(keys)
        if WILDCARD not in combo.values() and combo not in complete:
            complete.append(combo)
    out = []
    for t in trials:
        mine = t.swept(keys)
        out.append([c for c in complete if serves(mine, c)] or [mine])
    return out


def assign_settings(outcomes: pl.DataFrame) -> pl.DataFrame:
    """Add the `setting` label that every table and figure groups by: the SETTING_FIELDS columns,
    then the swept config keys. A trial that does not read a swept key belongs to every setting
    that agrees on the keys it reads: it gets one row per setting.

    Consumers only filter on `setting` and loop over `setting_order`, so everything downstream
    holds with such repeated trials (the protocol counts trials by id)."""
    def value(columns: tuple[str, ...]) -> pl.Expr:
        present = [pl.col(c).cast(pl.String) for c in columns if c in outcomes.columns]
        return pl.coalesce(*present, pl.lit("?"))

    base = outcomes.select(pl.concat_str(
        [pl.lit(f"{name}=") + value(columns) for name, columns in SETTING_FIELDS.items()], separator=" "
    ))[:, 0].to_list()
    configs = [read_config(text) for text in outcomes["config_json"].to_list()]
    labels: list[list[str]] = [[] for _ in base]
    for group in dict.fromkeys(base):  # settings never cross corpus, features, folds, ...
        rows = [i for i, b in enumerate(base) if b == group]
        trials = [configs[i] for i in rows]
        keys = [k for k in swept_keys(trials) if k not in SETTING_FIELDS]
        for i, combos in zip(rows, memberships(trials, keys)):
            labels[i] = [" ".join([group, setting_label(c)]).strip() for c in combos]
    return (outcomes.with_columns(setting=pl.Series(labels, dtype=pl.List(pl.String)))
            .explode("setting"))


def setting_order(trials: pl.DataFrame) -> list[str]:
    return sorted(set(trials["setting"].to_list()))
