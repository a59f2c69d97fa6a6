"""`nerve apply -f` on YAML that has no JSON form (issue 9, defect 17): one `error: <file>: line N: ...`
line and exit 2, never a traceback; duplicate keys refused as kubectl refuses them; dates kept as the
strings they were written as."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_cli import nerve
from tests.support.stack import Stack

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: ns1}\n"


@pytest.mark.parametrize(("body", "line", "reason"), [
    (CONFIGMAP + "data:\n  a: x\n  a: y\n", 6, 'key "a" already set in map'),
    (CONFIGMAP.replace("kind: ConfigMap\n", "kind: ConfigMap\nkind: Secret\n"), 3, 'key "kind" already set in map'),
    (CONFIGMAP + "data:\n  a: !!binary aGVsbG8=\n", 5, "!!binary values are not supported"),
    (CONFIGMAP + "data: !!set {a, b}\n", 4, "!!set values are not supported"),
    (CONFIGMAP + "data:\n  ? [a]\n  : b\n", 5, "a mapping key must be a string"),
])
async def test_yaml_with_no_json_form_is_one_line_naming_file_and_line(
    stack: Stack, tmp_path: Path, body: str, line: int, reason: str,
) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text(body)
    code, out, err = await nerve(stack, "apply", "-f", str(path))
    assert (code, out) == (2, "")
    [only] = err.splitlines()
    assert only.startswith(f"error: {path}: line {line}: {reason}"), only
    assert (await nerve(stack, "get", "configmaps", "-A"))[1] == ""


async def test_a_file_that_is_not_utf8_names_the_line(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "cm.yaml"
    path.write_bytes(CONFIGMAP.encode() + b"data: {a: \"\xff\xfe\"}\n")
    code, _, err = await nerve(stack, "apply", "-f", str(path))
    assert code == 2
    assert err.splitlines() == [f"error: {path}: line 4: not UTF-8: byte 0xff cannot be decoded"]


@pytest.mark.parametrize("items", ["{a: 1}", "just text", "7"])
async def test_a_list_whose_items_are_not_a_list_is_refused(stack: Stack, tmp_path: Path, items: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(f"apiVersion: v1\nkind: List\nitems: {items}\n")
    code, _, err = await nerve(stack, "apply", "-f", str(path))
    assert code == 2
    assert err.splitlines() == [f"error: {path} document 1: items: a List's items must be a list of manifests"]


async def test_an_alias_that_contains_itself_is_refused_not_a_crash(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(CONFIGMAP + "data: &loop {a: *loop}\n")
    code, _, err = await nerve(stack, "apply", "-f", str(path))
    assert code == 2
    [only] = err.splitlines()
    assert only == f"error: {path} document 1: more than 200000 values once its aliases are expanded"


async def test_a_document_nested_too_deep_is_refused_naming_where(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(CONFIGMAP + "extra: " + "[" * 100 + "]" * 100 + "\n")
    code, _, err = await nerve(stack, "apply", "-f", str(path))
    assert code == 2
    [only] = err.splitlines()
    assert only.startswith(f"error: {path} document 1: extra[0][0]") and "nested more than 64 levels" in only


async def test_dates_and_non_string_keys_are_applied_as_the_strings_written(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text(CONFIGMAP + "data:\n  since: 2024-01-31\n  at: 2024-01-31T10:00:00Z\n  1: one\n")
    code, out, err = await nerve(stack, "apply", "-f", str(path))
    assert (code, err) == (0, "")
    assert out == "configmap/cm created\n"
    stored = await stack.get("configmaps", "ns1", "cm")
    assert stored["data"] == {"since": "2024-01-31", "at": "2024-01-31T10:00:00Z", "1": "one"}


async def test_delete_reads_files_the_same_way(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text(CONFIGMAP + "metadata: {name: other}\n")
    code, _, err = await nerve(stack, "delete", "-f", str(path))
    assert code == 2
    assert err.splitlines() == [f"error: {path}: line 4: key \"metadata\" already set in map"]


async def test_aliases_that_expand_past_any_manifest_are_refused(stack: Stack, tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text(CONFIGMAP + "data: {}\nextra:\n" + "".join(f"  {line}\n" for line in lines))
    code, _, err = await nerve(stack, "apply", "-f", str(path))
    assert code == 2
    assert err.splitlines() == [f"error: {path} document 1: more than 200000 values once its aliases are expanded"]
