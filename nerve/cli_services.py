"""`nerve control|ingress|dispatcher|sources`: each part of Nerve as its own service, as compose runs them.

Each command hands its arguments to the service's own command line (`control/__main__.py` and its
siblings, built from the one settings definition), so `nerve ingress --port 8080` and `python -m ingress
--port 8080` are the same service with the same flags, environment variables and `--help`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import typer

SERVICES = {
    "control": "The control plane: the API, the store, the reconcilers; writes the contract file.",
    "ingress": "The Broker and Channel ingress, following the contract file.",
    "dispatcher": "The dispatcher: delivers to Triggers and Subscriptions, following the contract file.",
    "sources": "The source adapters (KafkaSource), following the contract file.",
}
# Every argument, --help included, goes to the service's own parser.
_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def register(app: typer.Typer) -> None:
    for name, description in SERVICES.items():
        app.command(name, help=f"{description} Flags: nerve {name} --help.", add_help_option=False,
                    context_settings=_PASS_THROUGH)(_command(name))


def _command(name: str) -> Callable[[typer.Context], None]:
    def command(ctx: typer.Context) -> None:
        # Imported when run: `nerve get` does not load a whole service.
        module = importlib.import_module(f"{name}.__main__")
        module.main(list(ctx.args), prog=f"nerve {name}")

    command.__name__ = name
    return command
