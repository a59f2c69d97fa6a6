"""PingSource's rules, builder and scheduler, without a server: Knative's cron spelling as croniter reads it,
each refusal naming its field, the status and contract entry, and what a restart fires."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest

from control.api.admission import AdmissionSettings, Refused, admit
from control.api.pingsource import ScheduleError, normalize_schedule
from control.reconcilers.resources import pingsource as build
from control.reconcilers.snapshot import Snapshot
from control.resolver import Resolver
from core.contract import Source
from core.events import Event
from core.hops import rfc3339
from sources import ping
from sources.base import SourceContext
from sources.settings import SourcesSettings


@pytest.mark.parametrize(("knative", "croniter"), [
    ("* * * * *", "* * * * * 0"),                 # five fields: second 0
    ("*/2 * * * * *", "* * * * * */2"),           # a leading seconds field moves last
    ("10 0/1 * * * ?", "0/1 * * * * 10"),         # Knative's e2e schedule; ? is *
    ("0 30 9 ? * MON-FRI", "30 9 * * MON-FRI 0"),
    ("@hourly", "0 * * * * 0"),
    ("@daily", "0 0 * * * 0"),
    ("@yearly", "0 0 1 1 * 0"),
    ("  */5 * * * *  ", "*/5 * * * * 0"),
])
def test_knative_schedules_become_croniter_s(knative: str, croniter: str) -> None:
    assert normalize_schedule(knative).cron == croniter


@pytest.mark.parametrize(("schedule", "reason"), [
    ("@every 1m", "@every is not supported by PingSource"),
    ("@often", "unknown descriptor '@often'"),
    ("* * * *", "expected 5 fields"),
    ("* * * * * * *", "expected 5 fields"),
    ("61 * * * *", "the minute field '61' is out of range"),
    ("60 * * * * *", "the second field '60' is out of range"),
    ("*/0 * * * *", "the minute field '*/0' is a bad step"),
    ("0 0 L * *", "the day-of-month field 'L' takes numbers"),
    ("0 0 * * 1#2", "has a character cron does not read"),
    ("0 0 * * FUN", "'FUN' is not a day-of-week name"),
])
def test_bad_schedules_say_why(schedule: str, reason: str) -> None:
    with pytest.raises(ScheduleError, match=reason.replace("*", r"\*").replace("?", r"\?")):
        normalize_schedule(schedule)


def test_a_cron_tz_prefix_is_the_schedule_s_time_zone() -> None:
    assert normalize_schedule("CRON_TZ=Europe/Paris 0 9 * * *") == ping_schedule("0 9 * * * 0", "Europe/Paris")


def ping_schedule(cron: str, timezone: str) -> Any:
    from control.api.pingsource import Schedule
    return Schedule(cron, timezone)


def manifest(version: str = "v1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"sources.knative.dev/{version}", "kind": "PingSource", "metadata": {"name": "p"},
            "spec": {"sink": {"uri": "http://sink.example/"}, **spec}}


def refusals(m: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(Refused) as caught:
        admit(m, None, AdmissionSettings())
    return [(e.path, e.reason) for e in caught.value.errors]


@pytest.mark.parametrize(("spec", "path", "reason"), [
    ({"schedule": "61 * * * *"}, "spec.schedule", "'61 * * * *' is not a valid schedule: the minute field '61' is "
                                                  "out of range"),
    ({"timezone": "Mars/Olympus"}, "spec.timezone", "'Mars/Olympus' is not an IANA time zone name (e.g. "
                                                    "Europe/Paris, UTC)"),
    ({"schedule": "CRON_TZ=Nowhere * * * * *"}, "spec.schedule", "'Nowhere' is not an IANA time zone name (e.g. "
                                                                 "Europe/Paris, UTC)"),
    ({"data": "a", "dataBase64": "YQ=="}, "spec.dataBase64", "data and dataBase64 are mutually exclusive; set one "
                                                             "of them"),
    ({"dataBase64": "not base64!"}, "spec.dataBase64", "is not valid base64: Only base64 data is allowed"),
    ({"contentType": "application/json", "data": "{nope"}, "spec.data",
     "is not valid JSON, as contentType application/json requires: Expecting property name enclosed in double "
     "quotes: line 1 column 2 (char 1)"),
    ({"contentType": "application/json; charset=utf-8", "dataBase64": base64.b64encode(b"[1]").decode()},
     "spec.dataBase64", "must be a JSON object when contentType is application/json (as Knative checks it)"),
    ({"schedule": 5}, "spec.schedule", "must be a string"),
])
def test_invalid_specs_are_refused_naming_the_field(spec: dict[str, Any], path: str, reason: str) -> None:
    [(got_path, got_reason)] = refusals(manifest(**spec))
    assert got_path == path
    assert got_reason.startswith(reason), got_reason


def test_valid_specs_are_accepted_and_defaulted() -> None:
    obj = admit(manifest(), None, AdmissionSettings()).obj
    assert obj["spec"]["schedule"] == "* * * * *"
    for spec in ({"timezone": "Europe/Paris", "schedule": "0 9 * * *"}, {"contentType": "text/plain", "data": "x"},
                 {"contentType": "application/json", "dataBase64": base64.b64encode(b'{"a": 1}').decode()},
                 {"schedule": "@weekly"}):
        admit(manifest(**spec), None, AdmissionSettings())


def test_v1beta1_json_data_is_v1_data_with_a_json_content_type() -> None:
    seed = manifest("v1beta1", schedule="*/1 * * * *", jsonData='{"message": "hello, world!"}')
    obj = admit(seed, None, AdmissionSettings()).obj
    assert obj["apiVersion"] == "sources.knative.dev/v1"
    assert obj["spec"] == {"schedule": "*/1 * * * *", "data": '{"message": "hello, world!"}',
                           "contentType": "application/json", "sink": {"uri": "http://sink.example/"}}
    beta2 = admit(manifest("v1beta2", data="x", contentType="text/plain"), None, AdmissionSettings()).obj
    assert beta2["spec"]["data"] == "x"
    assert refusals(manifest("v1beta1", jsonData="{oops"))[0][0] == "spec.data"


def stored(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
            "metadata": {"namespace": "ns1", "name": "p", "uid": "u1", "generation": 3},
            "spec": {"schedule": "*/2 * * * * *", **spec}}


def test_the_builder_writes_status_and_the_contract_entry() -> None:
    resolver = Resolver(Snapshot(), "http://{name}.{namespace}.svc")
    built = build.build(stored(sink={"uri": "http://sink/"}, timezone="Europe/Paris", contentType="text/plain",
                               dataBase64="aGk=", ceOverrides={"extensions": {"team": "a"}}), resolver)
    assert built.status["sinkUri"] == "http://sink/"
    assert built.status["ceAttributes"] == [{"type": "dev.knative.sources.ping",
                                             "source": "/apis/v1/namespaces/ns1/pingsources/p"}]
    assert {c["type"]: c["status"] for c in built.status["conditions"]} == {
        "SinkProvided": "True", "Deployed": "True", "Ready": "True"}
    assert built.source is not None
    assert (built.source.kind, built.source.egress.destination) == ("PingSource", "http://sink/")
    assert built.source.config == {"schedule": "* * * * * */2", "timezone": "Europe/Paris", "contentType": "text/plain",
                                   "dataBase64": "aGk=", "source": "/apis/v1/namespaces/ns1/pingsources/p",
                                   "ceOverrides": {"team": "a"}}
    missing = build.build(stored(sink={"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                               "name": "nope", "namespace": "ns1"}}), resolver)
    assert missing.source is None
    ready = next(c for c in missing.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NotFound")


class Sent:
    """Stands in for the Emitter: records each tick's scheduled time instead of sending it."""

    def __init__(self) -> None:
        self.times: list[str] = []

    def event(self, type_: str, source: str, data: bytes | None = None, **kw: Any) -> Event:
        self.times.append(str(kw["extensions"]["time"]))
        return Event({"specversion": "1.0", "id": "x", "type": type_, "source": source}, data)

    async def send(self, event: Event) -> str:
        return "delivered"


def job_source() -> Source:
    resolver = Resolver(Snapshot(), "http://{name}.{namespace}.svc")
    source = build.build(stored(schedule="* * * * * *", timezone="UTC", sink={"uri": "http://x/"}), resolver).source
    assert source is not None
    return source


def job(sent: Sent) -> Any:
    return ping._Job("u1", "PingSource/ns1/p", sent, job_source())  # type: ignore[arg-type]


async def test_a_restart_fires_recent_missed_ticks_once_and_skips_older(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_000_000.5]
    monkeypatch.setattr(ping.time, "time", lambda: clock[0])

    def scheduler() -> ping.Scheduler:
        return ping.Scheduler(ping.TickState(tmp_path / "p.db"), catch_up_s=3, max_inflight=10,
                              drain_timeout_s=1)

    first, sent = scheduler(), Sent()
    first.add(job(sent))
    for _ in range(3):
        clock[0] += 1
        first._fire_due(clock[0])
    await first.stop()
    assert sent.times == [rfc3339(1_000_001), rfc3339(1_000_002), rfc3339(1_000_003)]

    clock[0] += 2  # two ticks fall due while nothing runs: both recent
    again, sent = scheduler(), Sent()
    again.add(job(sent))
    again._fire_due(clock[0])
    assert sent.times == [rfc3339(1_000_004), rfc3339(1_000_005)]
    await again.stop()

    clock[0] += 10  # ten more: only those within the 3 s catch-up window are fired
    last, sent = scheduler(), Sent()
    last.add(job(sent))
    last._fire_due(clock[0])
    assert sent.times == [rfc3339(1_000_013), rfc3339(1_000_014), rfc3339(1_000_015)]
    await last.stop()
    await asyncio.sleep(0)


async def test_an_unusable_state_dir_is_said_and_the_ticks_still_run(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings = SourcesSettings(state_dir=blocker / "state")
    context = SourceContext(pool=None, deliverer=object(), settings=settings)  # type: ignore[arg-type]
    adapter = ping.ping_source(job_source(), context)
    await adapter.start()
    try:
        assert "cannot keep PingSource ticks in" in caplog.text
        assert len(ping._SCHEDULERS[id(context.deliverer)]) == 1
    finally:
        await adapter.stop()
    assert id(context.deliverer) not in ping._SCHEDULERS
