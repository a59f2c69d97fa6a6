"""`python -m nerve.heartbeats`: Nerve's stand-in for Knative's sample heartbeats image (`.../cmd/heartbeats`,
also the seeds' `docker.io/coldtea214/heartbeats:1.0`), which embedded mode runs for a container of that image.

As Knative's program: every `--period` (a Go duration such as `5s`, or whole seconds; default 5s) one
CloudEvent of type `dev.knative.eventing.samples.heartbeat` (`--eventType`), source
`https://knative.dev/eventing/cmd/heartbeats/#<POD_NAMESPACE>/<POD_NAME>` (`--eventSource`), extensions
`the: 42`, `heart: yes`, `beats: true` and those of `K_CE_OVERRIDES` (`{"extensions": {...}}`), data
`{"id": <n from 1>, "label": <--label>}`, sent in binary mode to `K_SINK` (or `--sink`). `ONE_SHOT=true`
sends one and exits. Without a sink, or without POD_NAME/POD_NAMESPACE, it exits 1 saying which is
missing, as the seeds' pods fail before a SinkBinding gives them K_SINK. Go's flag syntax is accepted
(`-period=1`, `--period 1`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from datetime import datetime

from core.events import Event, to_binary
from core.hops import now_rfc3339

EVENT_TYPE = "dev.knative.eventing.samples.heartbeat"
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _log(message: str) -> None:
    print(f"{datetime.now().strftime('%Y/%m/%d %H:%M:%S')} {message}", file=sys.stderr, flush=True)


def parse_period(text: str) -> float:
    """A Go duration (`1s`, `500ms`, `1m30s`) or a whole number of seconds."""
    if text.isdigit():
        return float(text)
    if text and "".join(m.group(0) for m in _GO_DURATION.finditer(text)) == text:
        return sum(float(n) * _UNITS[unit] for n, unit in _GO_DURATION.findall(text))
    raise ValueError(f"Invalid period interval provided: {text!r}")


def _go_flags(argv: Sequence[str]) -> list[str]:
    """Go's flag package takes `-name=value` as well as `--name=value`."""
    return [f"-{a}" if a.startswith("-") and not a.startswith("--") and len(a) > 2 else a for a in argv]


def build(sequence: int, source: str, event_type: str, label: str, extensions: dict[str, str]) -> Event:
    attributes: dict[str, str | int | bool] = {
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": source, "type": event_type,
        "time": now_rfc3339(),
        "datacontenttype": "application/json", "the": 42, "heart": "yes", "beats": True,
    }
    attributes.update(extensions)
    return Event(attributes, json.dumps({"id": sequence, "label": label}).encode())


def send(sink: str, event: Event, timeout: float = 10.0) -> None:
    headers, body = to_binary(event)
    request = urllib.request.Request(sink, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        _log(f"failed to send cloudevent: {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError) as exc:
        _log(f"failed to send cloudevent: {getattr(exc, 'reason', exc)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="heartbeats", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eventSource", default="")
    parser.add_argument("--eventType", default=EVENT_TYPE)
    parser.add_argument("--sink", default="")
    parser.add_argument("--label", default="")
    parser.add_argument("--period", default="5s")
    args = parser.parse_args(_go_flags(sys.argv[1:] if argv is None else argv))
    env = os.environ
    sink = env.get("K_SINK") or args.sink
    missing = [name for name in ("POD_NAME", "POD_NAMESPACE") if not env.get(name)]
    if not sink:
        missing.insert(0, "K_SINK")
    if missing:
        _log(f"[ERROR] Failed to process env var: required key {missing[0]} missing value")
        return 1
    one_shot = env.get("ONE_SHOT", "false")
    if one_shot not in _TRUE + _FALSE:
        _log(f"[ERROR] Failed to process env var: ONE_SHOT={one_shot!r} is not a boolean")
        return 1
    extensions: dict[str, str] = {}
    if env.get("K_CE_OVERRIDES"):
        try:
            overrides = json.loads(env["K_CE_OVERRIDES"])
            extensions = {str(k): str(v) for k, v in (overrides.get("extensions") or {}).items()}
        except (ValueError, AttributeError) as exc:
            _log(f"[ERROR] Unparseable CloudEvents overrides {env['K_CE_OVERRIDES']}: {exc}")
            return 1
    try:
        period = parse_period(args.period)
    except ValueError as exc:
        _log(str(exc))
        return 1
    source = args.eventSource or f"https://knative.dev/eventing/cmd/heartbeats/#{env['POD_NAMESPACE']}/{env['POD_NAME']}"
    _log(f"Heartbeats Source: {source}")
    label = args.label
    if label.startswith('"'):
        try:
            label = json.loads(label)
        except ValueError:
            pass
    sequence = 0
    next_beat = time.monotonic()
    while True:
        sequence += 1
        _log(f"sending cloudevent to {sink}")
        send(sink, build(sequence, source, args.eventType, label, extensions))
        if one_shot in _TRUE:
            return 0
        next_beat += period
        time.sleep(max(next_beat - time.monotonic(), 0.0))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
