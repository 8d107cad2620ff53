"""Help that finds methods and parameters: ``rareflow methods`` and ``rareflow train METHOD --help``.

:class:`HelpfulCommand` is the click command class of every ``rareflow`` command. It renders
boolean flags as flags (no ``<bool>`` value column) and, for ``train METHOD --help``, adds the
method's parameters (name, default, allowed values, description; see
:mod:`rareflow.detectors.describe`) after the usual option list. Imports stay light: the
detector modules are imported only when a method's help or the method table is asked for.
"""

from __future__ import annotations

from typing import Any

import click
import typer
from typer.core import TyperCommand


def _is_option(param: click.Parameter) -> bool:
    return param.param_type_name == "option"  # typer's options are not click.Option subclasses


def _is_flag(param: click.Parameter) -> bool:
    return _is_option(param) and bool(getattr(param, "is_flag", False))


def _method_token(command: click.Command, args: list[str]) -> str | None:
    """The first positional token of ``args`` (the method of ``train``), skipping option values."""
    takes_value = {
        name for p in command.params if _is_option(p) and not _is_flag(p) for name in p.opts + p.secondary_opts
    }
    skip = False
    for token in args:
        if skip:
            skip = False
        elif token.startswith("-"):
            skip = "=" not in token and token in takes_value
        else:
            return token
    return None


class HelpfulCommand(TyperCommand):
    """A typer command whose help shows flags as flags and, for ``train``, the method's parameters."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if self.name == "train" and any(a in ctx.help_option_names for a in args):
            ctx.meta["rareflow_method_help"] = _method_token(self, args)
        return super().parse_args(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for param in self.get_params(ctx):
            if _is_flag(param) and param.metavar is None:
                param.metavar = ""  # typer would show <bool> as if the flag took a value
        result = super().format_help(ctx, formatter)
        method = ctx.meta.get("rareflow_method_help")
        if method:
            print_method_params(method)
        return result


class HelpfulTyper(typer.Typer):
    """``typer.Typer`` whose commands are :class:`HelpfulCommand` unless told otherwise."""

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or HelpfulCommand, **kwargs)


def _console() -> Any:
    from rich.console import Console

    return Console(soft_wrap=False)


def _default_text(value: Any) -> str:
    import inspect

    if value is inspect.Parameter.empty:
        return "(required)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return str(list(value))
    return str(value)


def print_method_params(method: str) -> None:
    """A table of ``method``'s constructor parameters (``--param NAME=VALUE``), or why there is none."""
    from rich.table import Table

    from rareflow.detectors import detector_class
    from rareflow.detectors.describe import needs, param_docs, summary_line
    from rareflow.errors import RareflowError

    console = _console()
    try:
        cls = detector_class(method)
    except RareflowError as exc:
        console.print(f"\n{exc}", markup=False, highlight=False)
        return
    table = Table(title=f"{method} ({cls.kind}; needs {needs(cls)}): --param NAME=VALUE", title_justify="left")
    table.add_column("parameter", no_wrap=True, style="bold cyan")
    table.add_column("default", no_wrap=True)
    table.add_column("allowed")
    table.add_column("description")
    for p in param_docs(cls):
        table.add_row(p.name, _default_text(p.default), p.allowed, p.help)
    console.print(f"\n{summary_line(cls)}", markup=False, highlight=False)
    console.print(table)
    console.print("Values are YAML: numbers, true/false, null, lists [64, 64], mappings {rule: quantile}.")


def print_methods() -> None:
    """The table of ``rareflow methods``: name, kind, what it needs, one line."""
    from rich.table import Table

    from rareflow.detectors.describe import method_rows

    table = Table(title="rareflow methods (details: rareflow train METHOD --help)", title_justify="left")
    table.add_column("method", no_wrap=True, style="bold cyan")
    table.add_column("kind", no_wrap=True)
    table.add_column("needs")
    table.add_column("what it does")
    for row in method_rows():
        table.add_row(*row)
    _console().print(table)
