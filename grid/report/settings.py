"""Which trials of a table are comparable: the report's settings, from the trials' own configs.

A setting is one value of every *swept* key: a TrialConfig field whose value differs between
trials that read it (`hcld.losses.variants.unused_settings` says which fields a trial reads). Row
axes (backbone, variant) and execution-only fields (threads, device, feature placement) never
make a setting. A trial that does not read a swept key belongs to every setting that agrees on
the keys it does read: emo_only, run once, is the EMO-only row of every temperature. Nothing else
is ever pooled: two trials share a setting only if every key they both read is equal.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from grid.sweeps import WILDCARD
from hcld.config import TrialConfig
from hcld.errors import ConfigError
from hcld.losses.variants import unused_settings

ROW_AXES = ("backbone", "variant", "speaker_backbone")  # rows of the tables, not settings
EXECUTION_FIELDS = ("threads", "device", "feature_placement")  # cannot change what is computed


@dataclasses.dataclass(frozen=True)
class TrialKeys:
    """A trial's values of the candidate keys, and which of them it does not read."""

    values: dict[str, Any]
    unused: frozenset[str]


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
    return TrialKeys(config.to_dict(), unused_settings(config))


def swept_keys(trials: list[TrialKeys]) -> list[str]:
    """Config fields (TrialConfig order) whose values differ between trials that read them."""
    skip = set(ROW_AXES) | set(EXECUTION_FIELDS)
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
    that agrees with it. A trial that agrees with none gets its own, with WILDCARD where it
    does not read a key (so it is shown, never dropped)."""
    def own(t: TrialKeys) -> dict[str, Any]:
        return {k: WILDCARD if k in t.unused or k not in t.values else t.values[k] for k in keys}

    complete: list[dict[str, Any]] = []
    for t in trials:
        combo = own(t)
        if WILDCARD not in combo.values() and combo not in complete:
            complete.append(combo)
    out = []
    for t in trials:
        mine = own(t)
        matching = [c for c in complete if all(mine[k] in (WILDCARD, c[k]) for k in keys)]
        out.append(matching or [mine])
    return out


def label(combo: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in combo.items())
