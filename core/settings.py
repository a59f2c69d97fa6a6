"""Settings defined once: flag, environment variable, default, type and help of every command-line setting.

A setting is a field of the typed settings dataclass that the code receives (`IngressSettings`,
`ControlSettings`, ...), declared with `setting(default, flag, env, help)`. The field's annotation is its
type and its default is the default, so nothing is written twice. From those fields come:

- the argparse options of `python -m control|ingress|dispatcher` (`add_arguments` / `parse`, here),
- the typer options of `nerve up` (`nerve/typer_settings.py`),
- `docs/configuration.md` (`markdown`, run by `scripts/gen_config_docs.py`).

Why not pydantic-settings: it parses a CLI of its own (argparse-based) but generates no typer options,
so `nerve up` would still need this bridge; and it would make the settings pydantic models, where the
code passes frozen dataclasses today. A table of field metadata is the smaller thing that serves both.

Values are checked the same way from either front end (`problem`): choices, a minimum, and an optional
check of the value (templates), so `nerve up --max-inflight 0` and `python -m dispatcher --max-inflight 0`
are refused with the same line, naming the flag (or the environment variable it came from).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

METADATA_KEY = "nerve.setting"
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: how it is spelled on the command line and in the environment, and what it takes."""

    flag: str
    """`--max-body-bytes`. For a bool it turns the setting on; `off_flag` turns it off."""
    env: str
    """`NERVE_MAX_BODY_BYTES` (or the well-known `KAFKA_BOOTSTRAP_SERVERS` / `NATS_URL`)."""
    help: str
    off_flag: str = ""
    """Bools only: the flag that sets False (`--keep-topics`); `--no-<flag>` when empty."""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    check: Callable[[Any], str | None] | None = None
    """Returns why a value is refused, or None."""
    # Filled in from the dataclass field by `settings_of`:
    name: str = ""
    type: type = str
    default: Any = None

    @property
    def off(self) -> str:
        return self.off_flag or f"--no-{self.flag.removeprefix('--')}"

    def but(self, **changes: Any) -> Setting:
        """The same setting with another default (or help) for one front end, e.g. `--host` of a container."""
        return dataclasses.replace(self, **changes)

    @property
    def description(self) -> str:
        """The help with what is accepted, as every front end and the docs show it."""
        text = self.help
        if self.choices:
            text += f" One of {', '.join(self.choices)}."
        if self.minimum is not None:
            text += f" At least {self.minimum:g}."
        return text

    def problem(self, value: Any) -> str | None:
        """Why `value` is not acceptable, or None."""
        if self.choices and value not in self.choices:
            return f"expected one of {', '.join(self.choices)}"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}"
        return self.check(value) if self.check else None

    def refusal(self, value: Any, why: str, *, from_env: bool = False) -> str:
        """The one line that refuses a value, naming where it came from: `--max-inflight 0: ...` or
        `NERVE_MAX_INFLIGHT='0': ...`."""
        return f"{self.env}={str(value)!r}: {why}" if from_env else f"{self.flag} {value!r}: {why}"

    def convert(self, text: str) -> Any:
        """A string (from the environment or argparse) as this setting's type; ValueError says why not."""
        if self.type is bool:
            lowered = text.strip().lower()
            if lowered in TRUE:
                return True
            if lowered in FALSE:
                return False
            raise ValueError(f"expected one of {', '.join(TRUE + FALSE)}")
        if self.type is int:
            try:
                return int(text)
            except ValueError:
                raise ValueError("expected a whole number") from None
        if self.type is float:
            try:
                return float(text)
            except ValueError:
                raise ValueError("expected a number") from None
        if self.type is Path:
            return Path(text)
        return text


def setting(default: T, flag: str, env: str, help: str, **options: Any) -> T:
    """A dataclass field that is also a command-line setting (see the module docstring)."""
    spec = Setting(flag, env, help, **options)
    return dataclasses.field(default=default, metadata={METADATA_KEY: spec})


def same_as(cls: type, name: str, **changes: Any) -> Any:
    """A field that is the same setting as `cls.name` (flag, env, default), for a settings dataclass that
    gathers other ones (`nerve up`'s); `changes` (a default, a help) are this front end's own."""
    source = _fields(cls)[name]
    spec = source.metadata[METADATA_KEY]
    default = changes.pop("default", source.default)
    return dataclasses.field(default=default, metadata={METADATA_KEY: dataclasses.replace(spec, **changes)})


def settings_of(cls: type, *names: str) -> list[Setting]:
    """The settings among `cls`'s fields (those named, in that order, or all in field order)."""
    hints = typing.get_type_hints(cls)
    found: dict[str, Setting] = {}
    for f in _fields(cls).values():
        spec = f.metadata.get(METADATA_KEY)
        if isinstance(spec, Setting):
            found[f.name] = dataclasses.replace(spec, name=f.name, type=hints[f.name], default=f.default)
    if not names:
        return list(found.values())
    missing = [n for n in names if n not in found]
    if missing:
        raise KeyError(f"{cls.__name__} has no settings {missing}")
    return [found[n] for n in names]


def build(cls: type[T], values: Mapping[str, Any], **extra: Any) -> T:
    """`cls` from the parsed values its fields name (others are left to their defaults), plus `extra`."""
    known = {k: v for k, v in values.items() if k in _fields(cls)}
    return cls(**{**known, **extra})


def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls)}


def format_template(*placeholders: str) -> Callable[[Any], str | None]:
    """A check for a str.format template that may use only `placeholders`."""

    def check(value: Any) -> str | None:
        try:
            str(value).format(**dict.fromkeys(placeholders, "x"))
        except (KeyError, IndexError, ValueError) as exc:
            allowed = " and ".join(f"{{{p}}}" for p in placeholders)
            return f"only {allowed} may be used ({type(exc).__name__}: {exc})"
        return None

    return check


# ------------------------------------------------------------------------------------------ argparse


class _Unset:
    """Marks an option not given on the command line, so its environment variable is read after parsing
    (and an error can name the variable rather than the flag)."""

    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()


def add_arguments(parser: argparse.ArgumentParser, settings: Iterable[Setting]) -> None:
    for s in settings:
        meta = f"[env {s.env}; default {s.default!s}]" if s.default not in ("", None) else f"[env {s.env}]"
        if s.type is bool:
            parser.add_argument(s.flag, dest=s.name, action="store_true", default=UNSET, help=f"{s.description} {meta}")
            parser.add_argument(s.off, dest=s.name, action="store_false", default=UNSET, help=f"(sets {s.flag} off)")
        else:
            parser.add_argument(s.flag, dest=s.name, default=UNSET, metavar=s.type.__name__.upper(),
                                type=_argparse_type(s), help=f"{s.description} {meta}")


def _argparse_type(s: Setting) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return s.convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None

    convert.__name__ = s.type.__name__  # argparse names the type in its message
    return convert


def parse(parser: argparse.ArgumentParser, settings: Sequence[Setting],
          argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse flags, then the environment, then defaults; every value checked. Errors exit 2 with one line
    naming the flag or the environment variable, as argparse's own errors do."""
    add_arguments(parser, settings)
    args = vars(parser.parse_args(argv))
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for s in settings:
        value, from_env = args[s.name], False
        if value is UNSET:
            text = env.get(s.env)
            if text is not None:
                from_env = True
                try:
                    value = s.convert(text)
                except ValueError as exc:
                    parser.error(s.refusal(text, str(exc), from_env=True))
            else:
                value = s.default
        why = s.problem(value)
        if why is not None:
            parser.error(s.refusal(value, why, from_env=from_env))
        values[s.name] = value
    return values


# ------------------------------------------------------------------------------------------ docs


def markdown(settings: Iterable[Setting]) -> str:
    """A Markdown table of the settings: flag, environment variable, type, default, meaning."""
    rows = ["| flag | environment | type | default | meaning |", "|---|---|---|---|---|"]
    for s in settings:
        flag = f"`{s.flag}` / `{s.off}`" if s.type is bool else f"`{s.flag}`"
        default = "" if s.default in ("", None) else f"`{_show(s.default)}`"
        meaning = s.description.replace("|", "\\|")  # a pipe would end the table cell
        rows.append(f"| {flag} | `{s.env}` | {s.type.__name__} | {default} | {meaning} |")
    return "\n".join(rows) + "\n"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
