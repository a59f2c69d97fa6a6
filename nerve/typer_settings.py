"""Typer options generated from setting definitions (core/settings.py), for `nerve up`.

Typer reads a command's options from its function signature, so `options(settings)` gives the command a
signature built from the definitions: one `typer.Option(flag, envvar=env, help=help)` per setting, its
type and default. The command receives the parsed values as one dict, each already checked by the
same rule the services' argparse front end applies; a refused value exits 2 with one line naming the
flag, or the environment variable it came from.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

from core.settings import Setting


def _parameter(s: Setting) -> inspect.Parameter:
    declaration = f"{s.flag}/{s.off}" if s.type is bool else s.flag
    option = typer.Option(declaration, envvar=s.env, show_envvar=True, help=s.description)
    return inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, default=s.default,
                             annotation=Annotated[s.type, option])


def options(settings: Sequence[Setting]) -> Callable[[Callable[[dict[str, Any]], None]], Callable[..., None]]:
    """Decorate `command(values)` into a typer command whose options are `settings`."""

    def decorate(command: Callable[[dict[str, Any]], None]) -> Callable[..., None]:
        def typer_command(ctx: typer.Context, **values: Any) -> None:
            for s in settings:
                why = s.problem(values[s.name])
                if why is not None:
                    # By name: typer releases differ in whose click (their own copy or click's) they use.
                    from_env = getattr(ctx.get_parameter_source(s.name), "name", "") == "ENVIRONMENT"
                    typer.echo(f"error: {s.refusal(values[s.name], why, from_env=from_env)}", err=True)
                    raise typer.Exit(2)
            command(values)

        context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
        parameters = [context, *(_parameter(s) for s in settings)]
        typer_command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        typer_command.__annotations__ = {p.name: p.annotation for p in parameters}
        typer_command.__name__ = command.__name__
        typer_command.__doc__ = command.__doc__
        return typer_command

    return decorate
