"""What the README promises about the tooling: every `make` verb it names exists and `make help` lists it,
no verb is declared without a recipe, the tools that judge the code are pinned, and every runtime
dependency is one the code imports."""

from __future__ import annotations

import re
import subprocess
import tomllib

from tests.support.shared import REPO

MAKEFILE = (REPO / "Makefile").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# Distribution -> the module the code imports it as.
IMPORT_NAMES = {"pyyaml": "yaml", "prometheus-client": "prometheus_client", "nats-py": "nats", "pyjwt": "jwt",
                "opentelemetry-sdk": r"opentelemetry\.sdk",
                "opentelemetry-exporter-otlp-proto-http": r"opentelemetry\.exporter\.otlp\.proto\.http"}
SOURCES = ["core", "channels", "control", "ingress", "dispatcher", "sources", "nerve"]


def _rules() -> set[str]:
    return set(re.findall(r"^([a-z][a-z0-9-]*):", MAKEFILE, re.MULTILINE))


def _phony() -> set[str]:
    [line] = re.findall(r"^\.PHONY:(.*)$", MAKEFILE, re.MULTILINE)
    return set(line.split())


def test_every_make_verb_the_readme_names_is_listed_by_make_help() -> None:
    readme = (REPO / "README.md").read_text() + "".join(p.read_text() for p in (REPO / "docs").glob("*.md"))
    named = set(re.findall(r"`make ([a-z][a-z0-9-]*)", readme)) | set(re.findall(r"^make ([a-z][a-z0-9-]*)", readme,
                                                                              re.MULTILINE))
    shown = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    listed = set(re.findall(r"^make ([a-z][a-z0-9-]*)", shown, re.MULTILINE))
    assert named, "the README names no make verb?"
    assert named - listed == set()
    assert {"up", "test", "test-fast", "check", "lint", "typecheck", "kafka", "nats", "bench", "clean", "install",
            "kafka-fetch", "help"} <= listed


def test_every_phony_target_has_a_rule_and_a_line_in_help() -> None:
    rules = _rules()
    assert _phony() - rules == set()
    documented = set(re.findall(r"^([a-z][a-z0-9-]*):.*## ", MAKEFILE, re.MULTILINE))
    assert _phony() - documented == set()


def test_the_tools_that_judge_the_code_are_pinned_exactly() -> None:
    dev = PYPROJECT["project"]["optional-dependencies"]["dev"]
    judges = ("pytest", "pytest-asyncio", "pytest-timeout", "hypothesis", "mypy", "ruff", "import-linter", "types-")
    for requirement in dev:
        name = re.split(r"[=<>!~; ]", requirement, maxsplit=1)[0]
        if name.startswith(judges):
            assert re.fullmatch(rf"{re.escape(name)}==[\w.]+", requirement), requirement
    constraints = (REPO / "constraints.txt").read_text()
    assert "-c constraints.txt" in MAKEFILE.replace("$(CONSTRAINTS)", "constraints.txt")
    for requirement in dev:
        if "==" in requirement:
            assert requirement.lower() in constraints.lower(), f"{requirement} disagrees with constraints.txt"


def test_every_runtime_dependency_is_imported_by_the_code() -> None:
    code = "\n".join(p.read_text() for package in SOURCES for p in (REPO / package).rglob("*.py"))
    for requirement in PYPROJECT["project"]["dependencies"]:
        name = re.split(r"[=<>!~; \[]", requirement, maxsplit=1)[0].lower()
        module = IMPORT_NAMES.get(name, name.replace("-", "_"))
        assert re.search(rf"^\s*(import|from) {module}\b", code, re.MULTILINE), f"nothing imports {name}"
