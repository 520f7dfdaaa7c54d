"""What every command shares: the input-error policy, comma-list options and the lazy command group.

The error policy: a mistake in a command's input (a bad setting, a missing file, an unknown grid)
is an `HcldError`; every command prints it as one `error: ...` line on stderr and exits 2, as the
README says. Click's own usage errors exit 2 too. Tracebacks are for bugs only.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Sequence
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


def split_list(value: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']."""
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_names(value: str, known: Sequence[str], param_hint: str | None = None) -> tuple[str, ...]:
    """The comma-separated names in `value`, each one of `known`; at least one."""
    names = tuple(split_list(value))
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise click.BadParameter(f"unknown {bad}; known: {', '.join(known)}", param_hint=param_hint)
    return names


def names_option(known: Sequence[str]):
    """Click callback: a comma-separated list of names from `known` (None stays None: 'the default')."""
    return lambda _ctx, _param, value: None if value is None else parse_names(value, known)


def numbers_option(kind: type = int):
    """Click callback: a comma-separated list of `kind` (int or float); None stays None."""

    def parse(_ctx, _param, value: str | None) -> tuple | None:
        if value is None:
            return None
        try:
            numbers = tuple(kind(v) for v in split_list(value))
        except ValueError as err:
            raise click.BadParameter(f"expected comma-separated {kind.__name__}s, got {value!r}") from err
        if not numbers:
            raise click.BadParameter(f"expected comma-separated {kind.__name__}s, got {value!r}")
        return numbers

    return parse




class LazyGroup(click.Group):
    """A click group whose commands ({name: "module:attribute"}) are imported on first use, so a
    command loads only its own dependencies."""

    def __init__(self, *args: Any, commands: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.lazy_commands)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy_commands:
            return None
        module, _, attr = self.lazy_commands[name].partition(":")
        return getattr(importlib.import_module(module), attr)
