"""Settings defined once (core/settings.py): the flags users and the docs name, env names, precedence,
refusals, and docs/configuration.md kept current. The `nerve up` side runs through typer's own runner,
the services' side through their argparse front end."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from control.__main__ import command_line as control_command_line
from control.settings import ControlSettings
from core.cli_settings import ServiceSettings
from core.settings import Setting, build, parse
from dispatcher.__main__ import command_line as dispatcher_command_line
from dispatcher.__main__ import main as dispatcher_main
from ingress.__main__ import command_line as ingress_command_line
from ingress.settings import IngressSettings
from nerve.cli import app
from nerve.up_settings import UpSettings, from_values
from nerve.up_settings import command_line as up_command_line
from sources.__main__ import command_line as sources_command_line
from tests.support.launchers import script
from tests.support.shared import REPO

COMMAND_LINES = {
    "nerve up": up_command_line(),
    "python -m control": control_command_line(),
    "python -m ingress": ingress_command_line(),
    "python -m dispatcher": dispatcher_command_line(),
    "python -m sources": sources_command_line(),
}
WELL_KNOWN_ENV = {"--kafka-bootstrap": "KAFKA_BOOTSTRAP_SERVERS", "--nats-url": "NATS_URL"}


def _flags(command: str) -> set[str]:
    return {flag for s in COMMAND_LINES[command] for flag in ((s.flag, s.off) if s.type is bool else (s.flag,))}


def test_every_flag_the_readme_docs_tests_and_benchmarks_use_is_still_accepted() -> None:
    assert _flags("nerve up") >= {
        "--ingress-port", "--api-port", "--host", "--state-dir", "--backend", "--kafka-bootstrap", "--nats-url",
        "--service-url-template", "--topic-template", "--consumer-group-template", "--max-body-bytes",
        "--max-inflight", "--keep-topics",
    }
    assert _flags("python -m control") >= {
        "--host", "--port", "--state-dir", "--ingress-base-url", "--backend", "--kafka-bootstrap", "--nats-url",
        "--service-url-template", "--topic-template", "--consumer-group-template",
    }
    common = {"--host", "--port", "--contract", "--kafka-bootstrap", "--nats-url"}
    assert _flags("python -m ingress") >= common | {"--max-body-bytes"}
    assert _flags("python -m dispatcher") >= common | {"--max-inflight"}


def test_one_flag_means_one_setting_everywhere() -> None:
    by_flag: dict[str, set[tuple[str, str, type]]] = {}
    for settings in COMMAND_LINES.values():
        for s in settings:
            by_flag.setdefault(s.flag, set()).add((s.env, s.off, s.type))
    assert {flag: spellings for flag, spellings in by_flag.items() if len(spellings) > 1} == {}


def test_environment_names_follow_the_flag() -> None:
    for command, settings in COMMAND_LINES.items():
        for s in settings:
            expected = WELL_KNOWN_ENV.get(s.flag) or "NERVE_" + s.flag.removeprefix("--").replace("-", "_").upper()
            assert s.env == expected, f"{command} {s.flag}"


def test_nerve_up_and_the_services_share_their_defaults() -> None:
    up = {s.flag: s.default for s in COMMAND_LINES["nerve up"]}
    control = {s.flag: s.default for s in COMMAND_LINES["python -m control"]}
    for flag in ("--state-dir", "--service-url-template", "--topic-template", "--consumer-group-template",
                 "--resync-seconds", "--delete-topics", "--kafka-bootstrap", "--nats-url"):
        assert up[flag] == control[flag], flag
    # Every front end listens on loopback unless told otherwise (a container passes --host 0.0.0.0);
    # the deliberate difference: a laptop keeps events in memory.
    assert (up["--host"], up["--backend"]) == ("127.0.0.1", "memory")
    assert (control["--host"], control["--backend"]) == ("127.0.0.1", "kafka")
    assert UpSettings().topic_template == ControlSettings().topic_template == "knative-broker.{namespace}.{name}"


def _parse(settings: list[Setting], argv: list[str], environ: dict[str, str]) -> dict[str, object]:
    return parse(argparse.ArgumentParser(prog="test"), settings, argv, environ)


def test_a_flag_beats_the_environment_which_beats_the_default() -> None:
    settings = control_command_line()
    values = _parse(settings, ["--topic-template", "flag-{name}"],
                    {"NERVE_TOPIC_TEMPLATE": "env-{name}", "NERVE_CONSUMER_GROUP_TEMPLATE": "env-{namespace}",
                     "NERVE_DELETE_TOPICS": "false", "KAFKA_BOOTSTRAP_SERVERS": "k:9092", "NERVE_PORT": "9999"})
    control = build(ControlSettings, values)
    common = build(ServiceSettings, values)
    assert control.topic_template == "flag-{name}"
    assert control.consumer_group_template == "env-{namespace}"
    assert control.delete_topics is False
    assert control.default_backend == "kafka"
    assert control.state_dir == Path(".nerve")
    assert (common.kafka_bootstrap, common.port, common.host) == ("k:9092", 9999, "127.0.0.1")
    assert build(ControlSettings, _parse(settings, ["--keep-topics"], {})).delete_topics is False
    assert build(ControlSettings, _parse(settings, [], {})).delete_topics is True


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--max-inflight", "0"], {}, "error: --max-inflight 0: must be at least 1"),
        ([], {"NERVE_MAX_INFLIGHT": "0"}, "error: NERVE_MAX_INFLIGHT='0': must be at least 1"),
        ([], {"NERVE_MAX_INFLIGHT": "many"}, "error: NERVE_MAX_INFLIGHT='many': expected a whole number"),
        (["--max-inflight", "many"], {}, "error: argument --max-inflight: 'many': expected a whole number"),
        (["--port", "-1"], {}, "error: --port -1: must be at least 0"),
    ],
)
def test_the_services_refuse_a_bad_value_with_one_line_and_exit_2(
    argv: list[str], environ: dict[str, str], message: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        dispatcher_main(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"python -m dispatcher: {message}"


def test_control_refuses_an_unknown_backend_and_a_template_with_other_placeholders(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = control_command_line()
    with pytest.raises(SystemExit):
        _parse(settings, ["--backend", "rabbit"], {})
    refused = "test: error: --backend 'rabbit': expected one of memory, kafka, nats"
    assert capsys.readouterr().err.splitlines()[-1] == refused
    with pytest.raises(SystemExit):
        _parse(settings, [], {"NERVE_SERVICE_URL_TEMPLATE": "http://{svc}"})
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        "test: error: NERVE_SERVICE_URL_TEMPLATE='http://{svc}': only {name} and {namespace} may be used")


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--max-inflight", "0"], {}, "error: --max-inflight 0: must be at least 1"),
        ([], {"NERVE_MAX_INFLIGHT": "0"}, "error: NERVE_MAX_INFLIGHT='0': must be at least 1"),
        (["--backend", "rabbit"], {}, "error: --backend 'rabbit': expected one of memory, kafka, nats"),
        ([], {"NERVE_BACKEND": "rabbit"}, "error: NERVE_BACKEND='rabbit': expected one of memory, kafka, nats"),
        (["--max-body-bytes", "0"], {}, "error: --max-body-bytes 0: must be at least 1"),
        (["--backend", "nats"], {}, "error: --backend nats needs --nats-url nats://HOST:PORT (or NATS_URL); "
                                    "`make nats` runs one"),
        (["--workers", "2"], {}, "error: --workers needs --backend kafka or nats: the memory backend keeps events "
                                 "inside the `nerve up` process, so its ingress cannot run in worker processes"),
        (["--backend", "kafka", "--kafka-bootstrap", "127.0.0.1:9092", "--workers", "2", "--transport-encryption",
          "strict"], {}, "error: --workers needs --transport-encryption disabled: under strict the https listener "
                         "runs in the `nerve up` process"),
        (["--backend", "kafka", "--kafka-bootstrap", "127.0.0.1:9092", "--workers", "2", "--authentication-oidc",
          "enabled"], {}, "error: --workers needs --authentication-oidc disabled: the token check runs with the "
                          "`nerve up` process's issuer"),
    ],
)
def test_nerve_up_refuses_a_bad_value_with_one_line_and_exit_2(
    argv: list[str], environ: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NATS_URL", raising=False)
    result = CliRunner().invoke(app, ["up", *argv], env=environ)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [message]


def test_nerve_up_values_reach_the_settings_each_part_receives() -> None:
    values = {s.name: s.default for s in up_command_line()}
    values.update(ingress_port=0, max_body_bytes=1024, max_inflight=7, delete_topics=False, host="127.0.0.2")
    settings = from_values(values)
    assert settings.ingress == IngressSettings(host="127.0.0.2", port=0, max_body_bytes=1024)
    assert settings.dispatcher.max_inflight == 7
    assert (settings.ingress_port, settings.api_port, settings.delete_topics) == (0, 8081, False)


def test_docs_configuration_md_is_generated_from_the_definitions() -> None:
    generator = script("gen_config_docs")
    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == generator.render(), "docs/configuration.md is stale: run python scripts/gen_config_docs.py"
    for command, settings in COMMAND_LINES.items():
        # The heading names the command (`nerve ingress`, and `python -m ingress` beside it).
        section = re.split(rf"^## .*`{command}`.*$", committed, maxsplit=1, flags=re.M)[1].split("\n## ", 1)[0]
        assert [re.findall(r"^\| `(--[a-z-]+)`", line) for line in section.splitlines() if line.startswith("| `")] \
            == [[s.flag] for s in settings]
