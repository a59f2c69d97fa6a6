"""Reading `nerve apply/delete -f` files: YAML documents as kubectl reads them, or one clear line.

kubectl turns YAML into JSON before anything else sees it (sigs.k8s.io/yaml), so Nerve reads YAML
the same way and refuses, naming the file and line, what has no JSON form:

- duplicate keys are refused (`line 5: key "name" already set in map`, kubectl's words), never last-wins;
- timestamps (`2024-01-01`) stay the strings they were written as, as kubectl's conversion leaves them;
- `!!binary`, `!!set`, `!!omap` and `!!pairs` are refused (Kubernetes carries bytes base64-encoded in a
  string, and has lists and maps only);
- a scalar key that is not a string (`1: a`, `true: b`) becomes the string it was written as; a list or
  map as a key is refused;
- a file that is not UTF-8, a `kind: List` whose `items` is not a list, a document nested more than
  MAX_DEPTH levels and one whose aliases expand past MAX_VALUES (an alias that contains itself expands
  for ever) are refused.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode

from control.api.schema import MAX_DEPTH, too_deep

_MERGE = "tag:yaml.org,2002:merge"
MAX_VALUES = 200_000
"""Values one document may hold once its aliases are expanded (as JSON expands them): far more than any
manifest, far fewer than the billions a few nested aliases (`a: &a [x, x]`, `b: &b [*a, *a]`, ...) make."""


class ManifestError(Exception):
    """One line for the user: `<file>: line N: what is wrong`."""


@dataclass(frozen=True, slots=True)
class Document:
    manifest: Any
    origin: str
    """`<file> document <n>` (and ` item <i>` inside a List), how errors name it."""


class _Refused(ConstructorError):
    """Valid YAML that has no JSON form (or a duplicate key): said without "not valid YAML"."""

    def __init__(self, problem: str, node: Node) -> None:
        super().__init__(None, None, problem, node.start_mark)


# libyaml's parser where PyYAML was built with it (its wheels are): the same documents and the same
# constructors below, about 12 times quicker than the pure-Python parser (10,000 Triggers in one file:
# under a second instead of 10 s of the `nerve apply` command's CPU).
_BASE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE):  # type: ignore[valid-type,misc]
    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue  # `<<: *base` may be overridden by the mapping's own keys: that is no duplicate
            if not isinstance(key_node, ScalarNode):
                raise _Refused("a mapping key must be a string, not a list or a map", key_node)
            if key_node.value in seen:
                raise _Refused(f'key "{key_node.value}" already set in map', key_node)
            seen.add(key_node.value)
        self.flatten_mapping(node)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):  # one that came in through a merge
                raise _Refused("a mapping key must be a string, not a list or a map", key_node)
            # A key is the text it was written as: `1: a` and `true: b` give "1" and "true", as in JSON.
            mapping[key_node.value] = self.construct_object(value_node, deep=deep)
        return mapping


def _as_written(loader: yaml.SafeLoader, node: Node) -> str:
    return str(node.value)


def _no_json_form(what: str, instead: str) -> Any:
    def refuse(loader: yaml.SafeLoader, node: Node) -> Any:
        raise _Refused(f"{what} values are not supported: {instead}", node)
    return refuse


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _as_written)
_Loader.add_constructor("tag:yaml.org,2002:binary", _no_json_form(
    "!!binary", "write the bytes base64-encoded in a string (as a Secret's data)"))
_Loader.add_constructor("tag:yaml.org,2002:set", _no_json_form("!!set", "use a list"))
_Loader.add_constructor("tag:yaml.org,2002:omap", _no_json_form("!!omap", "use a mapping"))
_Loader.add_constructor("tag:yaml.org,2002:pairs", _no_json_form("!!pairs", "use a mapping"))


def _decode(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ManifestError(f"{name}: line {line}: not UTF-8: byte 0x{data[exc.start]:02x} cannot be decoded") \
            from None


def _yaml_error(name: str, exc: yaml.YAMLError) -> str:
    """`bad.yaml: line 3: not valid YAML: mapping values are not allowed here` (one line, 1-based line)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = exc.problem or "syntax error"
        if isinstance(exc, _Refused):
            return f"{name}: line {mark.line + 1}: {what}"
        if exc.context:
            what += f" ({exc.context}" + (f" at line {exc.context_mark.line + 1}" if exc.context_mark else "") + ")"
        return f"{name}: line {mark.line + 1}: not valid YAML: {what}"
    return f"{name}: not valid YAML: {exc}".replace("\n", " ")


def _too_many_values(doc: Any) -> bool:
    """Counted without recursion and given up at MAX_VALUES, so an alias bomb costs nothing to detect."""
    stack, count = [doc], 0
    while stack:
        value = stack.pop()
        count += 1
        if count > MAX_VALUES:
            return True
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _documents(name: str, text: str) -> list[Document]:
    out: list[Document] = []
    try:
        loaded = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise ManifestError(_yaml_error(name, exc)) from None
    for number, doc in enumerate(loaded, 1):
        origin = f"{name} document {number}"
        if doc is None:
            continue
        if _too_many_values(doc):
            raise ManifestError(f"{origin}: more than {MAX_VALUES} values once its aliases are expanded")
        deep = too_deep(doc)
        if deep is not None:
            raise ManifestError(f"{origin}: {deep}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(doc, dict) and doc.get("kind") == "List":
            items = doc.get("items")
            if items is None:
                items = []
            if not isinstance(items, list):
                raise ManifestError(f"{origin}: items: a List's items must be a list of manifests")
            out.extend(Document(item, f"{origin} item {i + 1}") for i, item in enumerate(items))
        else:
            out.append(Document(doc, origin))
    return out


def read(paths: list[str]) -> list[Document]:
    """Every document of the files and directories (`-` is stdin), in order; ManifestError otherwise."""
    docs: list[Document] = []
    for given in paths:
        if given == "-":
            sources = [("<stdin>", sys.stdin.buffer.read())]
        else:
            path = Path(given)
            if path.is_dir():
                files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
                if not files:
                    raise ManifestError(f"{given}: no .yaml, .yml or .json files in this directory")
            elif path.is_file():
                files = [path]
            else:
                raise ManifestError(f"{given}: no such file or directory")
            sources = [(str(p), p.read_bytes()) for p in files]
        for name, data in sources:
            docs += _documents(name, _decode(name, data))
    if not docs:
        raise ManifestError("no manifests found")
    return docs
