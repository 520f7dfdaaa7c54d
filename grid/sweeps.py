"""The vocabulary of settings: `--set key=value` / `--sweep key=v1,v2` parsing into typed
TrialConfig fields, the combinations of swept values, and the wildcard rule.

The wildcard rule: a trial that does not read a swept key (`hcld.losses.variants.unused_settings`)
has WILDCARD for it and serves every value of it (emo_only, run once, is the EMO-only row of every
temperature). Planning (grid.plan), progress lines and the report's settings all apply it from here.
"""

from __future__ import annotations

import itertools
import types
import typing
from typing import Any

from hcld.config import TrialConfig, check_setting, field_type_names
from hcld.errors import ConfigError, HcldError
from hcld.losses.variants import unused_settings

# -- --set key=value and --sweep key=v1,v2 --------------------------------------------------------

_FIELD_TYPES = typing.get_type_hints(TrialConfig)
_NO_VALUE = object()  # "not parsed yet": None is a value some settings take


def _coerce(key: str, text: str, flag: str) -> Any:
    """Turn the text of one value into the type TrialConfig declares for `key`, and check it."""
    hint = _FIELD_TYPES[key]
    kinds = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    kinds = sorted(kinds, key=lambda k: k is not type(None))  # "none" means None before it means "none"
    value: Any = _NO_VALUE
    for kind in kinds:
        if kind is type(None) and text.lower() in ("none", "null", ""):
            value = None
        elif kind is bool and text.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            value = text.lower() in ("1", "true", "yes", "on")
        elif kind in (int, float):
            try:
                value = kind(text)
            except ValueError:
                continue
        elif kind is str or typing.get_origin(kind) is typing.Literal:
            value = text
        if value is not _NO_VALUE:
            break
    if value is _NO_VALUE:
        raise HcldError(f"{flag} {key}={text}: expected {field_type_names(key)}")
    try:  # range and choice checks are TrialConfig's: one place says what a setting may be
        check_setting(key, value)
    except ConfigError as exc:
        raise HcldError(f"{flag} {key}={text}: {exc}") from None
    return value


def _split_key(item: str, flag: str) -> tuple[str, str]:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep:
        raise HcldError(f"{flag} {item!r}: expected key=value")
    if key not in _FIELD_TYPES:
        raise HcldError(f"{flag} {key}: not a trial setting; known: {', '.join(_FIELD_TYPES)}")
    return key, text.strip()


def parse_settings(items: typing.Iterable[str]) -> dict[str, Any]:
    """Parse `--set key=value` items into typed TrialConfig fields; a bad key or value is an error."""
    out: dict[str, Any] = {}
    for item in items:
        key, text = _split_key(item, "--set")
        out[key] = _coerce(key, text, "--set")
    return out


def parse_sweeps(items: typing.Iterable[str]) -> dict[str, tuple[Any, ...]]:
    """Parse `--sweep key=v1,v2,...` items into {field: typed values}, checked like --set."""
    out: dict[str, tuple[Any, ...]] = {}
    for item in items:
        key, text = _split_key(item, "--sweep")
        values = [v.strip() for v in text.split(",")]
        if not any(values):
            raise HcldError(f"--sweep {key}=: give at least one value")
        if key in ("backbone", "variant"):
            raise HcldError(f"--sweep {key}: use --{key}s, the grid's own {key} axis")
        typed = tuple(dict.fromkeys(_coerce(key, v, "--sweep") for v in values))  # no repeats
        out[key] = typed
    return out



# -- swept values ---------------------------------------------------------------------------------

def setting_combinations(sweeps: dict[str, tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Every combination of swept values, in the order given ([{}] without sweeps)."""
    keys = list(sweeps)
    return [dict(zip(keys, values)) for values in itertools.product(*(sweeps[k] for k in keys))]


WILDCARD = "*"  # a swept key the trial does not read: it serves every value


def swept_values(config: TrialConfig, keys: typing.Iterable[str]) -> dict[str, Any]:
    """The trial's value of each swept key, WILDCARD where it does not read the key."""
    unused = unused_settings(config)
    return {k: WILDCARD if k in unused else getattr(config, k) for k in keys}




def serves(values: dict[str, Any], combo: dict[str, Any]) -> bool:
    """Whether a trial with these swept values (WILDCARD where it does not read a key) belongs to
    the setting `combo`."""
    return all(values[k] in (WILDCARD, v) for k, v in combo.items())


def setting_label(combo: dict[str, Any]) -> str:
    """'trunk=shared temperature=0.07': how a setting is named in progress lines and reports."""
    return " ".join(f"{k}={v}" for k, v in combo.items())
