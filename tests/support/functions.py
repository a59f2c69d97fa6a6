"""Stand-ins for the functions Knative's flow walkthroughs run as container images, as Receiver scripts.

- `appender(" - Handled by 0")`: Knative's cmd/appender: the reply is the event with `message` of its
  JSON data extended (`id` kept), datacontenttype application/json, every other attribute as it came.
- `passes(predicate)`: the walkthrough's filter-nodejs: the event itself when the predicate holds,
  else 202 with no body (no event: the branch ends there).
- `transformer({"message": ...})`: transformer-nodejs: the event with its data replaced.

Also runnable, for trying the examples by hand (`examples/*/README.md`):

    python -m tests.support.functions appender --port 9101 --message " - Handled by 0"
    python -m tests.support.functions filter --port 9111 --minute even
    python -m tests.support.functions transformer --port 9113 --data '{"message": "we are even!"}'
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from core.events import Event, to_binary
from tests.support.receiver import Answer, Receiver, Script


def reply(event: Event) -> Answer:
    headers, body = to_binary(event)
    return Answer(200, headers, body)


def with_data(event: Event, data: dict[str, Any]) -> Event:
    attributes = {**event.attributes, "datacontenttype": "application/json"}
    return Event(attributes, json.dumps(data).encode())


def appender(message: str) -> Script:
    def append(_: int, event: Event) -> Answer:
        data = json.loads(event.data or b"{}")
        data["message"] = str(data.get("message", "")) + message
        return reply(with_data(event, data))
    return append


def passes(predicate: Callable[[Event], bool]) -> Script:
    def check(_: int, event: Event) -> Answer:
        return reply(event) if predicate(event) else Answer(202)
    return check


def transformer(data: dict[str, Any]) -> Script:
    return lambda _, event: reply(with_data(event, data))


def minute_is_even(event: Event) -> bool:
    """The walkthrough's FILTER `Math.round(Date.parse(event.time) / 60000) % 2 === 0`."""
    when = datetime.fromisoformat(str(event.attributes["time"]).replace("Z", "+00:00"))
    return round(when.timestamp() / 60) % 2 == 0


async def _serve(script: Script, port: int) -> None:
    receiver = Receiver(script)
    await receiver.start(port)
    print(f"listening on {receiver.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await receiver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.functions")
    sub = parser.add_subparsers(dest="function", required=True)
    for name in ("appender", "filter", "transformer"):
        p = sub.add_parser(name)
        p.add_argument("--port", type=int, required=True)
    sub.choices["appender"].add_argument("--message", required=True)
    sub.choices["filter"].add_argument("--minute", choices=("even", "odd"), required=True)
    sub.choices["transformer"].add_argument("--data", required=True)
    args = parser.parse_args()
    if args.function == "appender":
        script = appender(args.message)
    elif args.function == "filter":
        even = args.minute == "even"
        script = passes(lambda e: minute_is_even(e) == even)
    else:
        script = transformer(json.loads(args.data))
    asyncio.run(_serve(script, args.port))


if __name__ == "__main__":
    main()
