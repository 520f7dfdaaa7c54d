"""What every command shares: the input-error policy and the comma-list option parser.

The error policy: a mistake in a command's input (a bad setting, a missing file, an unknown grid)
is an `HcldError`; every command prints it as one `error: ...` line on stderr and exits 2, as the
README says. Click's own usage errors exit 2 too. Tracebacks are for bugs only.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from hcld.errors import HcldError

INPUT_ERROR = 2  # exit code of a refused input, the same as click's usage errors


def input_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command's function: HcldError -> one `error:` line on stderr, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HcldError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(INPUT_ERROR)

    return wrapper


def split_list(text: str, convert: Callable[[str], Any] = str) -> tuple[Any, ...]:
    """'a, b,,c' -> ('a', 'b', 'c'), each item through `convert`."""
    return tuple(convert(v.strip()) for v in text.split(",") if v.strip())


def comma_list(choices: tuple[str, ...] | None = None, convert: Callable[[str], Any] = str):
    """A click callback for a comma-separated option: a tuple of items (None when not given),
    each checked against `choices` if given and converted by `convert`."""

    def callback(_ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[Any, ...] | None:
        if value is None:
            return None
        try:
            items = split_list(value, convert)
        except ValueError as exc:
            raise click.BadParameter(f"{value!r}: {exc}", param=param) from None
        bad = [v for v in items if choices is not None and v not in choices]
        if bad:
            raise click.BadParameter(f"unknown {', '.join(map(str, bad))}; choose from {', '.join(choices)}",
                                     param=param)
        return items

    return callback
